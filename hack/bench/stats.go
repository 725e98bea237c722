package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// percentile is the p-th percentile (0 < p <= 100) of ds by the nearest-rank method; ds need
// not be sorted. It is 0 for no samples.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// dist is a latency distribution as the table and the JSON show it.
type dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Seconds"`
	P95 float64 `json:"p95Seconds"`
	P99 float64 `json:"p99Seconds"`
	Max float64 `json:"maxSeconds"`
}

func distOf(ds []time.Duration) dist {
	return dist{N: len(ds), P50: percentile(ds, 50).Seconds(), P95: percentile(ds, 95).Seconds(),
		P99: percentile(ds, 99).Seconds(), Max: percentile(ds, 100).Seconds()}
}

func (d dist) String() string {
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s", secs(d.P50), secs(d.P95), secs(d.P99))
}

// secs prints seconds with sensible precision: 4.2 ms, 312 ms, 1.84 s, 73 s.
func secs(s float64) string {
	switch {
	case s < 0.01:
		return fmt.Sprintf("%.1f ms", s*1000)
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	default:
		return fmt.Sprintf("%.0f s", s)
	}
}

// thousands prints n as 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
