package main

import (
	"os"
	"testing"
	"time"
)

func TestCPUMeter_perRequest(t *testing.T) {
	m := cpuMeter{}
	from := cpuSample{"service": time.Second, "database": 2 * time.Second}
	to := cpuSample{"service": 3 * time.Second, "database": 3 * time.Second, "opsbench": time.Second}
	tests := []struct {
		name     string
		from, to cpuSample
		requests int
		want     string
	}{
		{"both samples", from, to, 1000, "CPU ms per request: service 2.00, database 1.00"},
		{"no requests", from, to, 0, "no CPU figure"},
		{"nothing sampled twice", cpuSample{}, to, 10, "no CPU figure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.perRequest(tt.from, tt.to, tt.requests); got != tt.want {
				t.Errorf("perRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCPUMeter_sampleCountsThisProcess(t *testing.T) {
	m := newCPUMeter(os.Getpid())
	before := m.sample()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	after := m.sample()
	if after["opsbench"] <= before["opsbench"] || after["service"] <= before["service"] {
		t.Errorf("50 ms of spinning did not show: before %v, after %v", before, after)
	}
}
