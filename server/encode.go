package server

import (
	"unicode/utf8"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// The ICC lists (B1, B3) can be tens of thousands of items, and encoding each
// through the gen types by reflection cost more than reading it from the
// database. These append the same JSON that encoding/json writes for
// iccOperationToGen and iccOperationToV2 (HTML escaping off), field for field
// and in the same order; TestAppendICCItem holds them to it. request_body and
// error are stored compact (iccOperationFromGen) and appended as they are.

// appendICCItem appends op as a B1 item.
func appendICCItem(b []byte, op store.ICCOperation) []byte {
	b = append(b, `{"commit_datetime":`...)
	b = appendCommit(b, op)
	b = append(b, `,"connection_id":`...)
	b = appendJSONString(b, op.ConnectionID)
	b = append(b, `,"operation_id":`...)
	b = appendJSONString(b, op.ID)
	b = append(b, `,"operation_status":`...)
	b = appendJSONString(b, op.OperationStatus)
	b = append(b, `,"order_type":`...)
	b = appendJSONString(b, op.OrderType)
	b = append(b, `,"phase":`...)
	b = appendJSONString(b, op.Phase)
	b = append(b, `,"reception_datetime":"`...)
	b = op.ReceptionDatetime.UTC().AppendFormat(b, iccTimeLayout)
	b = append(b, `","request_body":`...)
	b = appendRawJSON(b, op.RequestBody, "null")
	return append(b, '}')
}

// appendICCItemV2 appends op as a B3 item.
func appendICCItemV2(b []byte, op store.ICCOperation) []byte {
	b = append(b, `{"commit_datetime":`...)
	b = appendCommit(b, op)
	b = append(b, `,"error":`...)
	b = appendRawJSON(b, op.Error, "{}")
	b = append(b, `,"id":`...)
	b = appendJSONString(b, op.ID)
	b = append(b, `,"operation_status":`...)
	b = appendJSONString(b, op.OperationStatus)
	b = append(b, `,"phase":`...)
	b = appendJSONString(b, op.Phase)
	b = append(b, `,"reception_datetime":"`...)
	b = op.ReceptionDatetime.UTC().AppendFormat(b, iccTimeLayout)
	b = append(b, `","request_body":`...)
	b = appendRawJSON(b, op.RequestBody, "null")
	b = append(b, `,"request_type":`...)
	b = appendJSONString(b, op.OrderType)
	b = append(b, `,"resource_id":`...)
	b = appendJSONString(b, op.ConnectionID)
	b = append(b, `,"resource_type":`...)
	b = appendJSONString(b, op.ResourceType)
	b = append(b, `,"service_type":`...)
	b = appendJSONString(b, string(serviceTypes[gen.ResourceType(op.ResourceType)]))
	b = append(b, `,"tenant_id":`...)
	b = appendJSONString(b, op.TenantID)
	return append(b, '}')
}

func appendCommit(b []byte, op store.ICCOperation) []byte {
	if op.CommitDatetime == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = op.CommitDatetime.UTC().AppendFormat(b, iccTimeLayout)
	return append(b, '"')
}

// appendRawJSON appends stored JSON text, or none when there is none.
func appendRawJSON(b, raw []byte, none string) []byte {
	if len(raw) == 0 {
		return append(b, none...)
	}
	return append(b, raw...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping off: quotes, backslashes and control characters
// escaped, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
