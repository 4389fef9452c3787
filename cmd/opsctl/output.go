package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"example.com/opsvc/client"
)

// table writes aligned columns.
type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A cell is one line: a tab or newline in a value would break the table.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.w, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.w.Flush() }

// show writes one record: its JSON, or the fields as name and value.
func show(w io.Writer, output string, v any, fields [][2]string) error {
	if output == "json" {
		return writeJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fields {
		if f[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
		}
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func writeCompactJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// msfFields are an MSF operation's fields as shown by get: bodies in full,
// clusters one line each.
func msfFields(op *client.Operation) [][2]string {
	f := [][2]string{
		{"operation_id", op.OperationId},
		{"status", string(op.Status)},
		{"sub_status", deref(op.SubStatus)},
		{"occurred_time", op.OccurredTime},
		{"reservation_time", deref(op.ReservationTime)},
		{"start_time", deref(op.StartTime)},
		{"last_update_time", op.LastUpdateTime},
		{"request", string(op.Request.Method) + " " + op.Request.Uri},
		{"request.body", op.Request.Body},
	}
	if r := op.Response; r != nil {
		if r.StatusCode != nil {
			f = append(f, [2]string{"response.status_code", fmt.Sprint(*r.StatusCode)})
		}
		f = append(f, [2]string{"response.body", deref(r.Body)})
	}
	if op.TargetClusters != nil {
		for i, c := range *op.TargetClusters {
			line := fmt.Sprintf("%s %s %s", c.ClusterId, c.Request.Method, c.Request.Uri)
			if c.Response != nil && c.Response.StatusCode != nil {
				line += fmt.Sprintf(" -> %d", *c.Response.StatusCode)
			}
			f = append(f, [2]string{fmt.Sprintf("target_clusters[%d]", i), line})
		}
	}
	if rb := op.Rollbacks; rb != nil {
		f = append(f, [2]string{"rollbacks", fmt.Sprintf("%s at %s", rb.Result, rb.OccurredTime)})
	}
	return f
}

// v2Fields are an ICC v2.0 operation's fields as shown by get.
func v2Fields(op *client.ICCOperationV2) [][2]string {
	errText := string(op.Error)
	if errText == "{}" {
		errText = ""
	}
	return [][2]string{
		{"id", op.Id},
		{"tenant_id", op.TenantId},
		{"resource_id", op.ResourceId.String()},
		{"resource_type", string(op.ResourceType)},
		{"service_type", string(op.ServiceType)},
		{"request_type", string(op.RequestType)},
		{"phase", string(op.Phase)},
		{"operation_status", string(op.OperationStatus)},
		{"reception_datetime", op.ReceptionDatetime},
		{"commit_datetime", deref(op.CommitDatetime)},
		{"request_body", string(op.RequestBody)},
		{"error", errText},
	}
}
