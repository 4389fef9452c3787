package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// loadRun is what one run of a load loop saw.
type loadRun struct {
	latencies []time.Duration // of each successful request or transaction
	elapsed   time.Duration
	errors    int
	firstErr  error
}

// perSecond is the successful requests per second.
func (r loadRun) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of the
// latencies, in milliseconds: with fewer than 100 samples p99 is the slowest.
func (r loadRun) percentile(p float64) float64 {
	if len(r.latencies) == 0 {
		return math.NaN()
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	i := int(math.Ceil(p/100*float64(len(l)))) - 1
	i = max(0, min(i, len(l)-1))
	return float64(l[i]) / float64(time.Millisecond)
}

// figure is one measured quantity over its runs.
type figure struct {
	values []float64 // one per run
	unit   string    // "/s", "ms", "MiB"
	na     string    // when set, there is no figure and this says why
}

func (f figure) ok() bool { return f.na == "" && len(f.values) > 0 }

// median of the runs; of an even count, the mean of the middle two.
func (f figure) median() float64 {
	if len(f.values) == 0 {
		return math.NaN()
	}
	v := slices.Clone(f.values)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (f figure) String() string {
	if f.na != "" {
		return f.na
	}
	if len(f.values) == 0 {
		return "-"
	}
	s := formatValue(f.median(), f.unit)
	if len(f.values) > 1 {
		parts := make([]string, len(f.values))
		for i, v := range f.values {
			parts[i] = formatValue(v, "")
		}
		s += " (" + strings.Join(parts, " ") + ")"
	}
	return s
}

func formatValue(v float64, unit string) string {
	var s string
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 100:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	switch unit {
	case "":
		return s
	case "/s":
		return s + "/s"
	}
	return s + " " + unit
}

// targetKind says how a row passes.
type targetKind int

const (
	noTarget   targetKind = iota
	atLeastX              // service / ideal >= x (throughput)
	atMostX               // service / ideal <= x (latency)
	atMostUnit            // service <= x in the row's unit (memory)
)

type target struct {
	kind targetKind
	x    float64
	unit string // of atMostUnit
}

func (t target) String() string {
	switch t.kind {
	case atLeastX:
		return fmt.Sprintf(">= %.1fx", t.x)
	case atMostX:
		return fmt.Sprintf("<= %.1fx", t.x)
	case atMostUnit:
		return fmt.Sprintf("<= %g %s", t.x, t.unit)
	}
	return "-"
}

// row is one line of the table.
type row struct {
	name           string
	service, ideal figure
	target         target
	note           string // shown after the table, keyed by the row's name
}

func (r row) ratio() float64 {
	if !r.service.ok() || !r.ideal.ok() || r.ideal.median() == 0 {
		return math.NaN()
	}
	return r.service.median() / r.ideal.median()
}

func (r row) result() string {
	if !r.service.ok() {
		if strings.HasPrefix(r.service.na, "n/a") {
			return "n/a"
		}
		return "ERROR"
	}
	pass := false
	switch r.target.kind {
	case noTarget:
		return "-"
	case atLeastX:
		pass = r.ratio() >= r.target.x
	case atMostX:
		pass = r.ratio() <= r.target.x
	case atMostUnit:
		pass = r.service.median() <= r.target.x
	}
	if pass {
		return "pass"
	}
	return "FAIL"
}

// printTable writes the one table of the run.
func printTable(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tservice: median (runs)\tideal: median (runs)\tratio\ttarget\tresult")
	for _, r := range rows {
		ratio := "-"
		if x := r.ratio(); !math.IsNaN(x) {
			ratio = fmt.Sprintf("%.2fx", x)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.service, r.ideal, ratio, r.target, r.result())
	}
	return tw.Flush()
}

// latencyFigure is percentile p of each run.
func latencyFigure(runs []loadRun, p float64) figure {
	f := figure{unit: "ms"}
	for _, r := range runs {
		f.values = append(f.values, r.percentile(p))
	}
	return f
}

// throughputFigure is the successful requests per second of each run.
func throughputFigure(runs []loadRun) figure {
	f := figure{unit: "/s"}
	for _, r := range runs {
		f.values = append(f.values, r.perSecond())
	}
	return f
}

// failed turns runs with errors into a figure that says so, short enough
// for the table, and returns the first error for the notes.
func failed(f figure, runs []loadRun) (figure, error) {
	errs, calls := 0, 0
	var first error
	for _, r := range runs {
		errs += r.errors
		calls += r.errors + len(r.latencies)
		if first == nil {
			first = r.firstErr
		}
	}
	if errs > 0 {
		f.na = fmt.Sprintf("ERROR: %d of %d failed", errs, calls)
	}
	return f, first
}
