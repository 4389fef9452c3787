package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"example.com/opsvc/client"
)

// Exit codes (see the package comment).
const (
	exitOK       = 0
	exitUsage    = 1
	exitNotFound = 2
	exitRefused  = 3
	exitFailed   = 4
	exitEndedBad = 5
	exitTimeout  = 6
)

// env is the environment: endpoint and token, read once.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// common are the flags every command takes.
type common struct {
	endpoint string
	token    string
	timeout  time.Duration
	output   string
	api      string
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the positional arguments, for the usage line
	summary string
	details string
	// flags registers the command's own flags.
	flags func(fs *flag.FlagSet)
	// apis are the families the command takes in --api, the first the default.
	apis []string
	run  func(ctx context.Context, e *env, c *common, cl *client.Client, fs *flag.FlagSet, args []string) error
}

var commands []*command // filled by commands.go's init, in the order shown

var apiPaths = map[string]string{"msf": "/v1/operations", "icc": "/v1.0/icc/operations", "v2": "/v2.0/operations"}

func usage(w io.Writer) {
	fmt.Fprint(w, `opsctl reads and records operations of the Operations Service.

Usage:
  opsctl COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every command takes:
  --endpoint URL  the service (env OPSCTL_ENDPOINT; default http://localhost:8080)
  --token TOKEN   sent as X-Auth-Token (env OPSCTL_TOKEN): needed for ICC, and for
                  MSF from outside the service's MSF_ALLOWED_CIDRS
  --timeout D     the longest one request may take (default 1m)
  -o table|json   output (default table)
  --help          the command's own flags

Exit codes: 0 done, 1 usage, 2 not found, 3 refused (4xx), 4 service failed (5xx) or
unreachable, 5 watch: ended failed, canceled or in error, 6 watch: --for passed.

"opsctl COMMAND --help" describes a command.
`)
}

// run runs opsctl with args and answers its exit code.
func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		name, args = args[1], []string{args[1], "--help"}
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "opsctl: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	return cmd.exec(e, args[1:])
}

func (cmd *command) exec(e *env, args []string) int {
	c := &common{}
	fs := flag.NewFlagSet("opsctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	endpoint := e.getenv("OPSCTL_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://localhost:8080"
	}
	fs.StringVar(&c.endpoint, "endpoint", endpoint, "the service's base URL (env OPSCTL_ENDPOINT)")
	fs.StringVar(&c.token, "token", e.getenv("OPSCTL_TOKEN"), "X-Auth-Token (env OPSCTL_TOKEN)")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "the longest one request may take")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
	if len(cmd.apis) > 0 {
		var names []string
		for _, a := range cmd.apis {
			names = append(names, fmt.Sprintf("%s (%s)", a, apiPaths[a]))
		}
		fs.StringVar(&c.api, "api", cmd.apis[0], "the family: "+strings.Join(names, ", "))
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	// The flag package prints what is wrong with a flag; the usage is
	// printed on --help only, to stdout.
	fs.Usage = func() {}
	help := func() {
		w := e.stdout
		fmt.Fprintf(w, "Usage: opsctl %s [flags] %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
		if cmd.details != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
		}
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		help()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", fs.Name())
		return exitUsage // flag printed why
	}
	if c.output != "table" && c.output != "json" {
		return usageError(e, fs, "-o: %q is not table or json", c.output)
	}
	if len(cmd.apis) > 0 && !contains(cmd.apis, c.api) {
		return usageError(e, fs, "--api: %q is not one of %s", c.api, strings.Join(cmd.apis, ", "))
	}
	cl, err := client.New(c.endpoint, client.WithToken(c.token),
		client.WithHTTPClient(&http.Client{Timeout: c.timeout}))
	if err != nil {
		return usageError(e, fs, "--endpoint: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = cmd.run(ctx, e, c, cl, fs, pos)
	var ue *usageErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return usageError(e, fs, "%s", ue.msg)
	}
	fmt.Fprintf(e.stderr, "opsctl %s: %v\n", cmd.name, err)
	return exitCode(err)
}

// exitCode maps an error of a command to its exit code.
func exitCode(err error) int {
	var ce *client.Error
	var ee *exitErr
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound:
		return exitNotFound
	case errors.As(err, &ce) && ce.StatusCode >= 400 && ce.StatusCode < 500:
		return exitRefused
	default:
		return exitFailed
	}
}

// usageErr is a usage mistake found while running a command.
type usageErr struct{ msg string }

func (u *usageErr) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageErr{fmt.Sprintf(format, a...)} }

// exitErr ends a command with a code of its own.
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

func usageError(e *env, fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(e.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", fs.Name())
	return exitUsage
}

// parseInterspersed parses flags wherever they are among the arguments
// (`opsctl get ID -o json`), and answers the positional ones. After "--"
// everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag, or after "--", which it drops.
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// setFlags answers the names of the flags given, sorted.
func setFlags(fs *flag.FlagSet) []string {
	var names []string
	fs.Visit(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
