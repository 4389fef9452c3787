package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuMeter reads the CPU time (user and system) that processes have used,
// from /proc/PID/stat: what a run cost each side, per request, tells where
// a change in throughput comes from on a machine that the service, the
// database and the load share.
type cpuMeter struct {
	pids  map[string]int // by name: "service", "database", "opsbench"
	ticks float64        // clock ticks per second (USER_HZ)
}

// newCPUMeter meters the service, the local database server (mariadbd or
// mysqld, when it runs on this machine) and this process.
func newCPUMeter(service int) cpuMeter {
	m := cpuMeter{pids: map[string]int{"service": service, "opsbench": os.Getpid()}, ticks: 100}
	if pid := findProcess("mariadbd", "mysqld"); pid > 0 {
		m.pids["database"] = pid
	}
	return m
}

// cpuSample is each metered process's CPU time so far.
type cpuSample map[string]time.Duration

func (m cpuMeter) sample() cpuSample {
	s := cpuSample{}
	for name, pid := range m.pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// The command (field 2) is in parentheses and may hold spaces:
		// utime and stime are the 12th and 13th fields after it.
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		k, _ := strconv.ParseFloat(f[12], 64)
		s[name] = time.Duration((u + k) / m.ticks * float64(time.Second))
	}
	return s
}

// perRequest says, for the processes sampled both times, the CPU time each
// used between from and to per request: "service 0.41 database 0.45 ms".
func (m cpuMeter) perRequest(from, to cpuSample, requests int) string {
	if requests == 0 {
		return "no CPU figure"
	}
	var parts []string
	for _, name := range []string{"service", "database", "opsbench"} {
		a, okA := from[name]
		b, okB := to[name]
		if !okA || !okB {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(b-a)/float64(time.Millisecond)/float64(requests)))
	}
	if len(parts) == 0 {
		return "no CPU figure"
	}
	return "CPU ms per request: " + strings.Join(parts, ", ")
}

// findProcess is the pid of the first process named one of names, 0 when
// none runs (or /proc cannot tell).
func findProcess(names ...string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, n := range names {
			if comm == n {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return pid
			}
		}
	}
	return 0
}
