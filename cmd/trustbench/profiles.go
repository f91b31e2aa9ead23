package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/pprof/profile"
)

// savedProfile is a CPU profile of a product process taken during a
// benchmark and saved beside the report, with its hottest functions.
type savedProfile struct {
	name, during string
	file         string // relative to the report's directory
	seconds      float64
	top          []profileLine
}

// profileLine is one function's share of a profile's CPU samples.
type profileLine struct {
	function  string
	flat, cum float64 // seconds of CPU
	flatShare float64 // of all samples
	cumShare  float64
}

// profiling starts a CPU profile of p lasting d (serve's --pprof, on its
// metrics address) and returns the function that waits for it, saves it as
// name.pprof in e.profileDir and reads its top functions.
func (e *env) profiling(ctx context.Context, p *proc, name, during string, d time.Duration) (finish func() (savedProfile, error)) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// A process just started may not listen yet.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				done <- result{err: fmt.Errorf("%s never answered on %s: %w", name, p.metricsAddr, err)}
				return
			}
		}
		secs := max(1, int(d.Round(time.Second)/time.Second))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.metricsAddr, secs), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
		}
		done <- result{data, err}
	}()
	return func() (savedProfile, error) {
		r := <-done
		if r.err != nil {
			return savedProfile{}, fmt.Errorf("CPU profile %s: %w", name, r.err)
		}
		sp := savedProfile{name: name, during: during, file: filepath.Join("profiles", name+".pprof")}
		if err := os.MkdirAll(filepath.Join(e.profileDir, "profiles"), 0o755); err != nil {
			return sp, err
		}
		if err := os.WriteFile(filepath.Join(e.profileDir, sp.file), r.data, 0o644); err != nil {
			return sp, err
		}
		prof, err := profile.ParseData(r.data)
		if err != nil {
			return sp, fmt.Errorf("CPU profile %s: %w", name, err)
		}
		sp.seconds = float64(prof.DurationNanos) / 1e9
		sp.top = topFunctions(prof, 10)
		return sp, nil
	}
}

// topFunctions sums a CPU profile's samples by function: flat (the
// function itself, the sample's first frame) and cumulative (anywhere on
// the stack, once per sample), the n highest by flat.
func topFunctions(prof *profile.Profile, n int) []profileLine {
	idx := len(prof.SampleType) - 1 // cpu nanoseconds
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range prof.Sample {
		v := s.Value[idx]
		total += v
		seen := map[string]bool{}
		for i, loc := range s.Location {
			for j, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				fn := line.Function.Name
				// The leaf frame is the last line of the first location.
				if i == 0 && j == len(loc.Line)-1 {
					flat[fn] += v
				}
				if !seen[fn] {
					seen[fn] = true
					cum[fn] += v
				}
			}
		}
	}
	var out []profileLine
	for fn, v := range flat {
		out = append(out, profileLine{function: fn, flat: float64(v) / 1e9, cum: float64(cum[fn]) / 1e9,
			flatShare: float64(v) / float64(max(total, 1)), cumShare: float64(cum[fn]) / float64(max(total, 1))})
	}
	slices.SortFunc(out, func(a, b profileLine) int {
		if a.flat != b.flat {
			if a.flat > b.flat {
				return -1
			}
			return 1
		}
		return 0
	})
	return out[:min(n, len(out))]
}

// profileTable writes a saved profile's top functions.
func (r *report) profileTable(p func(string, ...any), sp savedProfile) {
	p("CPU profile of %s during %s: `%s` (next to this file; `go tool pprof -top bin/trustpulse %s`), %.1f s; the %d functions with the most CPU of their own:", sp.name, sp.during, sp.file, sp.file, sp.seconds, len(sp.top))
	p("")
	p("| function | flat s | flat | cum s | cum |")
	p("|---|---|---|---|---|")
	for _, l := range sp.top {
		p("| `%s` | %.2f | %.1f%% | %.2f | %.1f%% |", l.function, l.flat, 100*l.flatShare, l.cum, 100*l.cumShare)
	}
	p("")
}
