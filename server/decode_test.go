package server

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// decodeCases are JSON texts for decodeValue, valid and not: each must
// decode exactly as encoding/json does, or be left to it.
var decodeCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-12.25E-3`, `true`, `false`, `null`,
	` {"a" : [1, "x", null, true, {"b": {}}] } `,
	`{"a":1,"a":2}`,
	`"plain ascii"`, `"caf\u00e9 \ud83d\ude00 日本"`, `"\"\\\/\b\f\n\r\t"`, `"\u0000"`,
	`"日本語 text"`, `12345678901234567890123`, `1e400`,
	// Left to encoding/json: invalid or altered on decoding.
	`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, "\"\xff\"", "\"a\x01\"", `"\x"`, `"\u12"`,
	`01`, `-`, `1.`, `1e`, `.5`, `+1`, `tru`, `nul`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`,
	`[1 2]`, `{} {}`, `{}x`, `"unterminated`, `[`, `{`, ``, ` `, `{"a":`,
}

func TestDecodeValue(t *testing.T) {
	for _, text := range decodeCases {
		checkDecode(t, []byte(text))
	}
	// The A1 and B2 bodies of testdata/.
	files, _ := filepath.Glob("../testdata/msf/*.json")
	if len(files) == 0 {
		t.Fatal("no testdata/msf/*.json")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeValue(b); !ok {
			t.Errorf("%s: left to encoding/json", f)
		}
		checkDecode(t, b)
	}
}

// FuzzDecodeValue holds decodeValue to encoding/json: whatever it decodes,
// encoding/json decodes to the same value; whatever encoding/json refuses,
// it leaves to it.
func FuzzDecodeValue(f *testing.F) {
	for _, text := range decodeCases {
		f.Add([]byte(text))
	}
	f.Fuzz(checkDecode)
}

func checkDecode(t *testing.T, b []byte) {
	got, ok := decodeValue(b)
	want, err := decodeStd(b)
	switch {
	case ok && err != nil:
		t.Errorf("%q: decodeValue gave %#v, encoding/json refuses it: %v", b, got, err)
	case ok && !reflect.DeepEqual(got, want):
		t.Errorf("%q: decodeValue gave %#v, encoding/json %#v", b, got, want)
	}
	// Through decodeJSON, the answer is encoding/json's either way.
	v, err2 := decodeJSON(b)
	if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(v, want) {
		t.Errorf("%q: decodeJSON gave %#v, %v; encoding/json %#v, %v", b, v, err2, want, err)
	}
}

// BenchmarkDecodeJSON decodes an A1 notification of the A1 benchmark's
// shape with the fast path and with encoding/json alone.
func BenchmarkDecodeJSON(b *testing.B) {
	body := benchNotification(b, "op-bench", false)
	for _, d := range []struct {
		name   string
		decode func([]byte) (any, error)
	}{{"decodeJSON", decodeJSON}, {"encoding/json", decodeStd}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
