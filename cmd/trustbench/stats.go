package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies summarises durations.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

// runs summarises one figure over several runs: the median and the spread
// (lowest and highest).
type runs []float64

func (r runs) median() float64 {
	if len(r) == 0 {
		return math.NaN()
	}
	s := slices.Clone(r)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// String prints the median with the spread: "1234 (1100–1300)".
func (r runs) format(unit string, places int) string {
	if len(r) == 0 {
		return "–"
	}
	lo, hi := slices.Min(r), slices.Max(r)
	f := func(v float64) string { return fmt.Sprintf("%.*f", places, v) }
	if len(r) == 1 {
		return f(r[0]) + unit
	}
	return fmt.Sprintf("%s%s (%s–%s)", f(r.median()), unit, f(lo), f(hi))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// verdict says whether a goal is met.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**missed**"
}
