package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
)

// overloadStep is one offered rate of the open-loop ingest overload.
type overloadStep struct {
	rate   int     // offered submissions/s
	sent   float64 // submissions/s the load generator actually started
	window time.Duration
	// accepted (202), busy (503) and other answers (any other status or a
	// transport error; firstOther is the first of them).
	accepted, busy, other int
	firstOther            string
	noRetryAfter          int     // 503s without a Retry-After header
	p50, p99              float64 // ms of the 202s, from each one's scheduled start
	busyP50, busyP99      float64 // ms of the 503s, likewise
	baseRSS               float64 // VmRSS before the step, MiB
	peakRSS               float64 // VmHWM over the step, MiB
	hwmReset              bool    // VmHWM was reset before the step (else it is the process's peak so far)
	sampledRSS            float64 // highest VmRSS sampled every 100 ms, MiB
	cpu                   float64 // the ingest process's CPU seconds per second of the window
	harnessCPU            float64 // the harness's (load generator and NATS server), likewise
}

// overloadRate is a multiple of the closed-loop capacity, rounded to 50/s.
func overloadRate(capacity, factor float64) int {
	return max(50, int(math.Round(capacity*factor/50))*50)
}

// benchOverload offers survey submissions to an ingest process of its own
// (started with the product's default --max-inflight) at fixed rates, each
// a multiple of the closed-loop capacity, for d each: an open loop, as
// benchOpenLoop does for queries. Each submission carries a fresh
// invitation, issued before its step. Beyond the in-flight bound ingest
// should answer 503 at once and its memory stay bounded.
func benchOverload(ctx context.Context, e *env, capacity float64, factors []float64, d time.Duration) ([]overloadStep, error) {
	s, err := survey()
	if err != nil {
		return nil, err
	}
	p, err := e.startAs(ctx, "ingest-overload", "ingest", "--max-inflight", strconv.Itoa(ingest.DefaultMaxInFlight))
	if err != nil {
		return nil, err
	}
	defer e.stop("ingest-overload")
	rng := rand.New(rand.NewPCG(13, 14))
	staff := people(rng, 2000)
	var out []overloadStep
	for _, f := range factors {
		rate := overloadRate(capacity, f)
		issued := time.Now()
		_, bodies, err := submissions(ctx, e, s, staff, int(float64(rate)*d.Seconds()), rng)
		if err != nil {
			return nil, err
		}
		e.log.Info("overload: invitations issued", "n", len(bodies), "took", time.Since(issued).Round(time.Millisecond))
		// Let the previous step's connections and garbage settle.
		time.Sleep(2 * time.Second)
		st, err := overloadOnce(ctx, p, rate, bodies)
		if err != nil {
			return nil, err
		}
		e.log.Info("overload", "rate", rate, "sent_per_s", int(st.sent), "accepted", st.accepted, "busy", st.busy, "other", st.other,
			"p50_ms", st.p50, "p99_ms", st.p99, "ingest_cpu", st.cpu, "harness_cpu", st.harnessCPU, "peak_rss_mb", st.peakRSS, "sampled_rss_mb", st.sampledRSS, "load", loadAverage())
		if st.firstOther != "" {
			e.log.Warn("overload: other answers", "rate", rate, "n", st.other, "first", st.firstOther)
		}
		out = append(out, st)
	}
	return out, nil
}

// overloadOnce sends bodies to p at rate/s, body i at start + i/rate
// whatever became of the ones before.
func overloadOnce(ctx context.Context, p *proc, rate int, bodies [][]byte) (overloadStep, error) {
	st := overloadStep{rate: rate}
	var err error
	if st.baseRSS, err = p.rss(); err != nil {
		return st, err
	}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
	st.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0) == nil
	stopSampling := sampleRSS(p, &st.sampledRSS)
	cpu0, err := cpuTime(p.cmd.Process.Pid)
	if err != nil {
		return st, err
	}
	self0, err := cpuTime(os.Getpid())
	if err != nil {
		return st, err
	}
	interval := time.Second / time.Duration(rate)
	var mu sync.Mutex
	var ok, busy latencies
	var last time.Time
	var wg sync.WaitGroup
	start := time.Now().Add(20 * time.Millisecond)
	var lastSent time.Time
	for i, body := range bodies {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		lastSent = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, retryAfter, why := submitOnce(ctx, p.addr, body)
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if done.After(last) {
				last = done
			}
			switch code {
			case http.StatusAccepted:
				ok = append(ok, done.Sub(at))
			case http.StatusServiceUnavailable:
				busy = append(busy, done.Sub(at))
				if !retryAfter {
					st.noRetryAfter++
				}
			default:
				if st.other == 0 {
					st.firstOther = why
				}
				st.other++
			}
		}()
	}
	wg.Wait()
	stopSampling()
	cpu1, err := cpuTime(p.cmd.Process.Pid)
	if err != nil {
		return st, err
	}
	self1, err := cpuTime(os.Getpid())
	if err != nil {
		return st, err
	}
	if st.peakRSS, err = p.peakRSS(); err != nil {
		return st, err
	}
	st.window = last.Sub(start)
	st.sent = float64(len(bodies)) / max(lastSent.Sub(start), interval).Seconds()
	st.accepted, st.busy = len(ok), len(busy)
	st.p50, st.p99 = ms(ok.quantile(.5)), ms(ok.quantile(.99))
	st.busyP50, st.busyP99 = ms(busy.quantile(.5)), ms(busy.quantile(.99))
	st.cpu = (cpu1 - cpu0).Seconds() / st.window.Seconds()
	st.harnessCPU = (self1 - self0).Seconds() / st.window.Seconds()
	return st, nil
}

// submitOnce posts one submission and returns the status (0 on a
// transport error), whether the answer carried Retry-After and, unless
// it is 202 or 503, what went wrong.
func submitOnce(ctx context.Context, addr string, body []byte) (int, bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/responses", bytes.NewReader(body))
	if err != nil {
		return 0, false, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	retryAfter := resp.Header.Get("Retry-After") != ""
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusServiceUnavailable {
		return resp.StatusCode, retryAfter, ""
	}
	return resp.StatusCode, retryAfter, fmt.Sprintf("%s %.200s", resp.Status, b)
}

// sampleRSS records p's highest VmRSS, read every 100 ms, into highest
// until the returned function is called.
func sampleRSS(p *proc, highest *float64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if mb, err := p.rss(); err == nil {
				*highest = max(*highest, mb)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
