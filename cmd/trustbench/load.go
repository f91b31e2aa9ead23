package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadStep is one offered rate of the open-loop load, over every run.
type loadStep struct {
	rate     int
	p50, p99 runs // ms, from each request's scheduled start
	achieved runs // successful responses per second
	errors   []int
	cpuMS    runs // the query process's CPU time (user + system) per request, ms
	selfMS   runs // the harness's (load generator and embedded NATS server)
	// logged counts the query process's logged errors over the step, by
	// what failed (the text after "err=" up to the first colon pair).
	logged map[string]int
	// profile is the query process's CPU profile over the step's first
	// run, taken at the rate closest to 300/s only.
	profile *savedProfile
}

// loadClient has room for every request in flight: an open-loop load
// must not queue in the client.
var loadClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2048, MaxConnsPerHost: 0}, Timeout: 10 * time.Second}

// benchOpenLoop offers requests of path to the query process at fixed
// rates: request i starts at start + i/rate whatever became of the ones
// before (open loop, not a pool of workers waiting for answers), and its
// latency is taken from that scheduled start, so time spent waiting
// behind a late dispatcher counts too. Each rate runs for d; the ladder
// runs rounds times.
func benchOpenLoop(ctx context.Context, e *env, token, path string, rates []int, d time.Duration, rounds int) ([]loadStep, error) {
	q := e.procs["query"]
	logPath := filepath.Join(e.dir, "query.log")
	steps := make([]loadStep, len(rates))
	for round := range rounds {
		for i, rate := range rates {
			steps[i].rate = rate
			if steps[i].logged == nil {
				steps[i].logged = map[string]int{}
			}
			if err := settle(ctx, q, token, path); err != nil {
				return nil, err
			}
			from := fileSize(logPath)
			self0, _ := cpuTime(os.Getpid())
			var finish func() (savedProfile, error)
			if round == 0 && i == profiledRate(rates) {
				finish = e.profiling(ctx, q, "query-heatmap", fmt.Sprintf("the warm heatmap load's first run at %d requests/s", rate), d)
			}
			lat, errs, achieved, cpu, err := openLoop(ctx, q, token, path, rate, d)
			if err != nil {
				return nil, err
			}
			if finish != nil {
				sp, err := finish()
				if err != nil {
					return nil, err
				}
				steps[i].profile = &sp
			}
			self1, _ := cpuTime(os.Getpid())
			steps[i].selfMS = append(steps[i].selfMS, ms(self1-self0)/(float64(rate)*d.Seconds()))
			for what, n := range loggedErrors(logPath, from) {
				steps[i].logged[what] += n
			}
			steps[i].p50 = append(steps[i].p50, ms(lat.quantile(.5)))
			steps[i].p99 = append(steps[i].p99, ms(lat.quantile(.99)))
			steps[i].achieved = append(steps[i].achieved, achieved)
			steps[i].errors = append(steps[i].errors, errs)
			steps[i].cpuMS = append(steps[i].cpuMS, cpu)
			e.log.Info("open loop", "round", round+1, "rate", rate, "p50_ms", ms(lat.quantile(.5)), "p99_ms", ms(lat.quantile(.99)), "errors", errs, "achieved", int(achieved), "cpu_ms_per_req", cpu)
		}
	}
	return steps, nil
}

func openLoop(ctx context.Context, q *proc, token, path string, rate int, d time.Duration) (latencies, int, float64, float64, error) {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	var mu sync.Mutex
	var lat latencies
	errs, ok := 0, 0
	firstErr := ""
	var last time.Time
	var wg sync.WaitGroup
	cpu0, err := cpuTime(q.cmd.Process.Pid)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	start := time.Now().Add(20 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+q.addr+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := loadClient.Do(req)
			why := ""
			if err != nil {
				why = err.Error()
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					why = resp.Status
				}
			}
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if why != "" {
				if errs == 0 {
					firstErr = why
				}
				errs++
				return
			}
			ok++
			lat = append(lat, done.Sub(at))
			if done.After(last) {
				last = done
			}
		}()
	}
	wg.Wait()
	if errs > 0 {
		slog.Warn("open loop: failed requests", "rate", rate, "errors", errs, "first", firstErr)
	}
	cpu1, err := cpuTime(q.cmd.Process.Pid)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	achieved := 0.0
	if ok > 0 {
		achieved = float64(ok) / last.Sub(start).Seconds()
	}
	return lat, errs, achieved, ms(cpu1-cpu0) / float64(n), nil
}

// settle waits until the query process answers the request again as
// when idle (three answers in a row within 50 ms, at most a minute), so
// that one step's overload (ClickHouse still working off the queries of
// requests that timed out) does not spill into the next step.
func settle(ctx context.Context, q *proc, token, path string) error {
	good := 0
	for deadline := time.Now().Add(time.Minute); good < 3; time.Sleep(200 * time.Millisecond) {
		if d, err := timedGet(ctx, q.addr, path, token); err == nil && d < 50*time.Millisecond {
			good++
		} else {
			good = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open loop: the query process did not recover within a minute after the previous step")
		}
	}
	return nil
}

var connDetail = regexp.MustCompile(` from [0-9.:]+| \(conn_id=[0-9]+\)`)

func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

// loggedErrors counts the errors a process logged after offset from, by
// their message and the first part of the error ("query: checkpoint").
func loggedErrors(path string, from int64) map[string]int {
	out := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return out
	}
	b, _ := io.ReadAll(f)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "level=ERROR") {
			continue
		}
		msg, what := "", ""
		if _, rest, ok := strings.Cut(line, "msg=\""); ok {
			msg, _, _ = strings.Cut(rest, "\"")
		}
		if _, rest, ok := strings.Cut(line, "err=\""); ok {
			parts := strings.SplitN(rest, ": ", 3)
			what = strings.Join(parts[:min(2, len(parts))], ": ")
			what = strings.TrimSuffix(what, "\"")
		}
		// One kind per cause: connection ids and addresses vary.
		what = connDetail.ReplaceAllString(what, "")
		out[msg+" ("+what+")"]++
	}
	return out
}

// cpuTime is a process's CPU time so far, user and system.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu time of %d: %v %v", pid, err1, err2)
	}
	// Clock ticks are 100 a second on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// sustained is the highest offered rate served without errors, at 95%
// of the rate or more, with a median p99 within limit ms; 0 if none.
func sustained(steps []loadStep, limit float64) int {
	best := 0
	for _, s := range steps {
		errs := 0
		for _, e := range s.errors {
			errs += e
		}
		if errs == 0 && s.achieved.median() >= 0.95*float64(s.rate) && s.p99.median() <= limit {
			best = max(best, s.rate)
		}
	}
	return best
}

// profiledRate is the index of the rate closest to the goal's 300
// requests/s, the one the query's CPU profile is taken at.
func profiledRate(rates []int) int {
	best := 0
	for i, r := range rates {
		if abs(r-loadGoalRPS) < abs(rates[best]-loadGoalRPS) {
			best = i
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
