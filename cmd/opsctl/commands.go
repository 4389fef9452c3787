package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"example.com/opsvc/client"
)

func init() {
	commands = []*command{getCmd, listCmd, putCmd, watchCmd}
}

var getCmd = &command{
	name:    "get",
	args:    "ID",
	summary: "show one operation",
	details: `
--api msf (the default): GET /v1/operations/ID, the full record with its bodies.
--api v2: GET /v2.0/operations/ID (ICC API v1.0 has no read of one operation);
another tenant's operation is not found, like one that does not exist (exit 2).

Examples:
  opsctl get op-20261123-0001
  OPSCTL_TOKEN=tenant-a-token opsctl get --api v2 op-a80c1728-approve -o json`,
	apis: []string{"msf", "v2"},
	run: func(ctx context.Context, e *env, c *common, cl *client.Client, _ *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usagef("want one operation id, got %d arguments", len(args))
		}
		if c.api == "msf" {
			op, err := cl.GetOperation(ctx, args[0])
			if err != nil {
				return err
			}
			return show(e.stdout, c.output, op, msfFields(op))
		}
		op, err := cl.GetICCOperationV2(ctx, args[0])
		if err != nil {
			return err
		}
		return show(e.stdout, c.output, op, v2Fields(op))
	},
}

// listFilters are list's flags, and the families that take each.
var listFilters = struct {
	format, connectionID, orderType, phase, operationStatus string
	id, serviceType, resourceType, resourceID, requestType  string
	latest                                                  bool
}{}

var listFlagAPIs = map[string][]string{
	"format":        {"msf"},
	"connection-id": {"icc"}, "order-type": {"icc"},
	"id": {"v2"}, "service-type": {"v2"}, "resource-type": {"v2"}, "resource-id": {"v2"}, "request-type": {"v2"},
	"phase": {"icc", "v2"}, "operation-status": {"icc", "v2"}, "latest": {"icc", "v2"},
}

var listCmd = &command{
	name:    "list",
	summary: "list operations, of either family, filtered",
	details: `
--api msf (the default): GET /v1/operations, every MSF operation by occurred_time:
  --format list (ids) or detail-list (without bodies).
--api icc: GET /v1.0/icc/operations, the token's tenant's connection operations
  (an admin token sees every tenant's), filtered by --connection-id, --order-type,
  --phase, --operation-status, --latest.
--api v2: GET /v2.0/operations, the same in ICC API v2.0's shape, filtered by --id,
  --service-type, --resource-type, --resource-id, --request-type, --phase,
  --operation-status, --latest.
Filters combine. A filter of another family is a usage error; a value the service
refuses is exit 3, naming the parameter.

Examples:
  opsctl list --format detail-list
  OPSCTL_TOKEN=tenant-a-token opsctl list --api icc --connection-id a80c1728-cc0c-11e6-8080-525400060300 --latest
  OPSCTL_TOKEN=tenant-a-token opsctl list --api v2 --request-type Create -o json`,
	apis: []string{"msf", "icc", "v2"},
	flags: func(fs *flag.FlagSet) {
		f := &listFilters
		*f = struct {
			format, connectionID, orderType, phase, operationStatus string
			id, serviceType, resourceType, resourceID, requestType  string
			latest                                                  bool
		}{}
		fs.StringVar(&f.format, "format", "list", "msf: list (ids) or detail-list (operations without bodies)")
		fs.StringVar(&f.connectionID, "connection-id", "", "icc: the connection's id (a UUID)")
		fs.StringVar(&f.orderType, "order-type", "", "icc: Create, Update or Delete")
		fs.StringVar(&f.phase, "phase", "", "icc, v2: prepare_connection, approve_connection, disapprove_connection, update_connection or delete_connection")
		fs.StringVar(&f.operationStatus, "operation-status", "", "icc, v2: processing, complete or error")
		fs.BoolVar(&f.latest, "latest", false, "icc, v2: only the latest matching operation of each connection")
		fs.StringVar(&f.id, "id", "", "v2: an operation id")
		fs.StringVar(&f.serviceType, "service-type", "", "v2: e.g. ECL::SDExchange::AWSConnection")
		fs.StringVar(&f.resourceType, "resource-type", "", "v2: aws_connection, tenant_connection_request or tenant_connection")
		fs.StringVar(&f.resourceID, "resource-id", "", "v2: the resource's id (v1.0's connection_id, a UUID)")
		fs.StringVar(&f.requestType, "request-type", "", "v2: Create, Update or Delete (v1.0's order_type)")
	},
	run: func(ctx context.Context, e *env, c *common, cl *client.Client, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usagef("list takes no arguments, got %q", strings.Join(args, " "))
		}
		for _, name := range setFlags(fs) {
			if apis, ok := listFlagAPIs[name]; ok && !contains(apis, c.api) {
				return usagef("--%s is a filter of --api %s, not %s", name, strings.Join(apis, " and "), c.api)
			}
		}
		f := &listFilters
		switch c.api {
		case "msf":
			return listMSF(ctx, e, c, cl, f.format)
		case "icc":
			p := &client.ListICCOperationsParams{
				OrderType:       opt[client.OrderType](f.orderType),
				Phase:           opt[client.Phase](f.phase),
				OperationStatus: opt[client.OperationStatus](f.operationStatus),
			}
			var err error
			if p.ConnectionId, err = optUUID("connection-id", f.connectionID); err != nil {
				return err
			}
			if f.latest {
				p.Latest = opt[client.ListICCOperationsParamsLatest]("true")
			}
			ops, err := cl.ListICCOperations(ctx, p)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(e.stdout, client.ICCOperationList{Operations: ops})
			}
			t := newTable(e.stdout, "OPERATION_ID", "CONNECTION_ID", "ORDER_TYPE", "PHASE", "STATUS", "RECEPTION", "COMMIT")
			for _, op := range ops {
				t.row(op.OperationId, op.ConnectionId.String(), string(op.OrderType), string(op.Phase), string(op.OperationStatus),
					op.ReceptionDatetime, deref(op.CommitDatetime))
			}
			return t.flush()
		default:
			p := &client.ListICCOperationsV2Params{
				Id:              opt[string](f.id),
				ServiceType:     opt[client.ServiceType](f.serviceType),
				ResourceType:    opt[client.ResourceType](f.resourceType),
				RequestType:     opt[client.OrderType](f.requestType),
				OperationStatus: opt[client.OperationStatus](f.operationStatus),
				Phase:           opt[client.Phase](f.phase),
			}
			var err error
			if p.ResourceId, err = optUUID("resource-id", f.resourceID); err != nil {
				return err
			}
			if f.latest {
				p.Latest = opt[client.ListICCOperationsV2ParamsLatest]("true")
			}
			ops, err := cl.ListICCOperationsV2(ctx, p)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(e.stdout, client.ICCOperationV2List{Operations: ops})
			}
			t := newTable(e.stdout, "ID", "RESOURCE_ID", "RESOURCE_TYPE", "REQUEST_TYPE", "PHASE", "STATUS", "RECEPTION", "COMMIT")
			for _, op := range ops {
				t.row(op.Id, op.ResourceId.String(), string(op.ResourceType), string(op.RequestType), string(op.Phase),
					string(op.OperationStatus), op.ReceptionDatetime, deref(op.CommitDatetime))
			}
			return t.flush()
		}
	},
}

func listMSF(ctx context.Context, e *env, c *common, cl *client.Client, format string) error {
	switch format {
	case "list":
		ids, err := cl.ListOperationIDs(ctx)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return writeJSON(e.stdout, client.OperationIDList{OperationIds: ids})
		}
		t := newTable(e.stdout, "OPERATION_ID")
		for _, id := range ids {
			t.row(id)
		}
		return t.flush()
	case "detail-list":
		ops, err := cl.ListOperationDetails(ctx)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return writeJSON(e.stdout, client.OperationDetailList{Operations: ops})
		}
		t := newTable(e.stdout, "OPERATION_ID", "STATUS", "OCCURRED", "LAST_UPDATE", "METHOD", "URI", "STATUS_CODE")
		for _, op := range ops {
			code := ""
			if op.Response != nil && op.Response.StatusCode != nil {
				code = fmt.Sprint(*op.Response.StatusCode)
			}
			t.row(op.OperationId, string(op.Status), op.OccurredTime, op.LastUpdateTime, string(op.Request.Method), op.Request.Uri, code)
		}
		return t.flush()
	}
	return usagef("--format: %q is not list or detail-list", format)
}

var putFile string

var putCmd = &command{
	name:    "put",
	args:    "[ID]",
	summary: "record an operation from a file or stdin",
	details: `
Sends the JSON of -f FILE (or standard input, without -f or with -f -) as it is:
the service stores exactly what it reads, and refuses what is invalid (exit 3,
naming the field).
--api msf (the default): PUT /v1/operations/ID, an MSF operation result
  notification; ID defaults to the body's operation_id.
--api icc: PUT /v1.0/icc/operations/ID, a connection operation (an admin token);
  ID is required. Prints whether it was created or replaced, and the record.

Examples:
  opsctl put -f testdata/notification.json
  OPSCTL_TOKEN=admin-token opsctl put --api icc op-a80c1728-approve < testdata/icc-operation.json`,
	apis: []string{"msf", "icc"},
	flags: func(fs *flag.FlagSet) {
		putFile = ""
		fs.StringVar(&putFile, "f", "", "the JSON to send; - or none: standard input")
	},
	run: func(ctx context.Context, e *env, c *common, cl *client.Client, _ *flag.FlagSet, args []string) error {
		if len(args) > 1 {
			return usagef("want at most one operation id, got %d arguments", len(args))
		}
		var body []byte
		var err error
		if putFile == "" || putFile == "-" {
			body, err = io.ReadAll(e.stdin)
		} else {
			body, err = os.ReadFile(putFile)
		}
		if err != nil {
			return usagef("-f: %v", err)
		}
		id := ""
		if len(args) == 1 {
			id = args[0]
		}
		if c.api == "msf" {
			if id == "" {
				var b struct {
					OperationID string `json:"operation_id"`
				}
				if json.Unmarshal(body, &b) != nil || b.OperationID == "" {
					return usagef("no ID given, and the body has no operation_id")
				}
				id = b.OperationID
			}
			if err := cl.PutOperationJSON(ctx, id, bytes.NewReader(body)); err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(e.stdout, map[string]string{"operation_id": id, "result": "recorded"})
			}
			fmt.Fprintf(e.stdout, "%s recorded\n", id)
			return nil
		}
		if id == "" {
			return usagef("--api icc needs the operation's ID")
		}
		rec, created, err := cl.PutICCOperationJSON(ctx, id, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if c.output == "json" {
			return writeJSON(e.stdout, rec)
		}
		what := "replaced"
		if created {
			what = "created"
		}
		fmt.Fprintf(e.stdout, "%s %s\n", id, what)
		return show(e.stdout, "table", rec, [][2]string{
			{"connection_id", rec.ConnectionId.String()}, {"tenant_id", rec.TenantId},
			{"order_type", string(rec.OrderType)}, {"phase", string(rec.Phase)},
			{"operation_status", string(rec.OperationStatus)},
			{"reception_datetime", rec.ReceptionDatetime}, {"commit_datetime", deref(rec.CommitDatetime)},
		})
	},
}

var watchFlags struct {
	interval time.Duration
	limit    time.Duration
}

var watchCmd = &command{
	name:    "watch",
	args:    "ID",
	summary: "follow an operation until it ends, showing its progress",
	details: `
Reads the operation, then asks again with the service's long poll (?wait=
--interval, at most 1m): each answer comes as soon as the operation is terminal,
or after --interval with its progress. It prints a line each time the operation
changes (-o json: the operation, one JSON document a line), until it is terminal:
--api msf (the default): completed (exit 0), failed or canceled (exit 5).
--api v2: operation_status complete (exit 0) or error (exit 5).
An operation that does not exist is exit 2 at once. A service that fails (5xx) or
cannot be reached is retried at the next interval, saying so on stderr; --for
bounds the whole watch (exit 6 when it passes).

Examples:
  opsctl watch op-20261123-0001 --interval 1s --for 10m
  OPSCTL_TOKEN=tenant-a-token opsctl watch --api v2 op-a80c1728-approve -o json`,
	apis: []string{"msf", "v2"},
	flags: func(fs *flag.FlagSet) {
		fs.DurationVar(&watchFlags.interval, "interval", 2*time.Second, "how often to show progress (the end is shown at once)")
		fs.DurationVar(&watchFlags.limit, "for", 0, "give up after this long (exit 6); 0: never")
	},
	run: func(ctx context.Context, e *env, c *common, cl *client.Client, _ *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usagef("want one operation id, got %d arguments", len(args))
		}
		if watchFlags.interval <= 0 {
			return usagef("--interval must be positive")
		}
		id := args[0]
		if watchFlags.limit > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, watchFlags.limit)
			defer cancel()
		}
		last := ""
		wait := time.Duration(0) // the first read answers at once
		for {
			state, line, doc, end, err := readState(ctx, cl, c.api, id, wait)
			switch {
			case ctx.Err() != nil:
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return &exitErr{exitTimeout, fmt.Sprintf("%s: still %s after %s", id, orNone(last), watchFlags.limit)}
				}
				return ctx.Err()
			case err != nil && exitCode(err) != exitFailed:
				return err
			case err != nil:
				fmt.Fprintf(e.stderr, "opsctl watch: %v (retrying in %s)\n", err, watchFlags.interval)
			case state != last:
				last = state
				if c.output == "json" {
					if err := writeCompactJSON(e.stdout, doc); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.stdout, "%s  %s\n", time.Now().Format("15:04:05"), line)
				}
				if end != "" {
					if end == "ok" {
						return nil
					}
					return &exitErr{exitEndedBad, fmt.Sprintf("%s ended %s", id, end)}
				}
			}
			if err == nil {
				// The next read waits for the end, as long as an interval
				// (and well within one request's --timeout).
				wait = min(watchFlags.interval, c.timeout/2)
				continue
			}
			select {
			case <-ctx.Done():
			case <-time.After(watchFlags.interval):
			}
		}
	},
}

// readState reads an operation once, waiting up to wait for it to end: what
// identifies its progress, a line showing it, the operation, and, when it is
// terminal, "ok" or how it ended.
func readState(ctx context.Context, cl *client.Client, api, id string, wait time.Duration) (state, line string, doc any, end string, err error) {
	if api == "msf" {
		op, err := cl.WaitOperation(ctx, id, wait)
		if err != nil {
			return "", "", nil, "", err
		}
		state = strings.Join([]string{string(op.Status), deref(op.SubStatus), op.LastUpdateTime}, "|")
		line = fmt.Sprintf("%s  %s  last_update_time %s", id, op.Status, op.LastUpdateTime)
		if op.SubStatus != nil {
			line += "  " + *op.SubStatus
		}
		switch op.Status {
		case client.StatusCompleted:
			end = "ok"
		case client.StatusFailed, client.StatusCanceled:
			end = string(op.Status)
		}
		return state, line, op, end, nil
	}
	op, err := cl.WaitICCOperationV2(ctx, id, wait)
	if err != nil {
		return "", "", nil, "", err
	}
	state = strings.Join([]string{string(op.OperationStatus), string(op.Phase), deref(op.CommitDatetime)}, "|")
	line = fmt.Sprintf("%s  %s  %s", id, op.OperationStatus, op.Phase)
	if op.CommitDatetime != nil {
		line += "  committed " + *op.CommitDatetime
	}
	switch op.OperationStatus {
	case client.OperationStatusComplete:
		end = "ok"
	case client.OperationStatusError:
		end = "in error"
	}
	return state, line, op, end, nil
}

// opt is a pointer to s as T, or nil when s is empty: an unset filter.
func opt[T ~string](s string) *T {
	if s == "" {
		return nil
	}
	v := T(s)
	return &v
}

func optUUID(flagName, s string) (*uuid.UUID, error) {
	if s == "" {
		return nil, nil
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return nil, usagef("--%s: %q is not a UUID", flagName, s)
	}
	return &u, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orNone(state string) string {
	if state == "" {
		return "unread"
	}
	return strings.SplitN(state, "|", 2)[0]
}
