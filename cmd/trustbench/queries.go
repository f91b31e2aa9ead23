package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// queryResult is one endpoint's latency through the API, the same SQL run
// bare through clickhouse-go, and the equivalent aggregates on PostgreSQL.
type queryResult struct {
	name           string
	apiP50, apiP99 float64 // ms, through HTTP, as served (cached)
	// coldP50 and coldP99 are the API in process with its caches off: every
	// request computes everything, as the first one for a wave does.
	coldP50, coldP99 float64
	bareP50, bareP99 float64 // the SQL of one cold request, replayed bare
	pgP50, pgP99     float64
	statements       int
	apiFirst         []time.Duration
	// stmts are the bare replay's statements, each with its median time.
	stmts []stmtTime
}

// stmtTime is one statement of a request and its median time bare.
type stmtTime struct {
	sql string
	ms  float64
}

// endpoints are the dashboard's and analysts' queries, for wave w.
func endpoints(w string) []struct{ name, path string } {
	return []struct{ name, path string }{
		{"overview (scores of a wave)", "/v1/orgs/bench/waves/" + w + "/scores"},
		{"heatmap (by department)", "/v1/orgs/bench/waves/" + w + "/scores?group_by=department"},
		{"trends (every wave)", "/v1/orgs/bench/trends"},
		{"driver impact", "/v1/orgs/bench/waves/" + w + "/drivers"},
		{"participation (by department)", "/v1/orgs/bench/waves/" + w + "/participation?group_by=department"},
	}
}

// recordingConn notes the SQL a query service runs, with its arguments.
type recordingConn struct {
	driver.Conn
	mu    sync.Mutex
	stmts []recorded
}

type recorded struct {
	sql  string
	args []any
}

func (r *recordingConn) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	r.mu.Lock()
	r.stmts = append(r.stmts, recorded{sql, args})
	r.mu.Unlock()
	return r.Conn.Query(ctx, sql, args...)
}

func (r *recordingConn) QueryRow(ctx context.Context, sql string, args ...any) driver.Row {
	r.mu.Lock()
	r.stmts = append(r.stmts, recorded{sql, args})
	r.mu.Unlock()
	return r.Conn.QueryRow(ctx, sql, args...)
}

// benchQueries measures each endpoint through the query process's HTTP API
// (after warm-up requests, so as served: from cache for released waves);
// then through an in-process query service with its caches off, whose
// SQL it records; then that SQL replayed bare through clickhouse-go.
// Only the first endpoints are measured when only is above zero; the
// uncached and bare runs repeat coldN times.
func benchQueries(ctx context.Context, e *env, token, wave string, n, coldN, only int) ([]queryResult, error) {
	q := e.procs["query"]
	// The overview's first request on the running process is the one
	// that is served.
	servedIn, err := waitServed(ctx, q.addr, token, endpoints(wave)[0].path)
	if err != nil {
		return nil, err
	}
	rec := &recordingConn{Conn: e.ch}
	inproc := query.NewServer(query.NewStore(rec), 5, schemas.ProjectorConsumer, slog.New(slog.NewTextHandler(io.Discard, nil)))
	inproc.SetRecordStore(query.NewRecordStore(e.js))
	inproc.DisableCaching()
	var out []queryResult
	eps := endpoints(wave)
	if only > 0 {
		eps = eps[:only]
	}
	for _, ep := range eps {
		r := queryResult{name: ep.name}
		get := func() (time.Duration, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+q.addr+ep.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			start := time.Now()
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("%s: %s", ep.path, resp.Status)
			}
			return time.Since(start), nil
		}
		var api latencies
		for i := range n + 3 {
			d, err := get()
			if err != nil {
				return nil, err
			}
			if i == 0 {
				if len(out) == 0 {
					d = servedIn
				}
				r.apiFirst = append(r.apiFirst, d)
			}
			if i >= 3 { // after warm-up
				api = append(api, d)
			}
		}
		r.apiP50, r.apiP99 = ms(api.quantile(.5)), ms(api.quantile(.99))

		// Uncached, in process; the last request's SQL is kept for the replay.
		var cold latencies
		var stmts []recorded
		for range coldN {
			rec.mu.Lock()
			rec.stmts = nil
			rec.mu.Unlock()
			req := httptest.NewRequest(http.MethodGet, ep.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			start := time.Now()
			resp, err := inproc.App().Test(req, 60_000)
			if err != nil {
				return nil, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cold = append(cold, time.Since(start))
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("in process %s: %s", ep.path, resp.Status)
			}
			rec.mu.Lock()
			stmts = rec.stmts
			rec.mu.Unlock()
		}
		r.coldP50, r.coldP99 = ms(cold.quantile(.5)), ms(cold.quantile(.99))
		r.statements = len(stmts)
		var bare latencies
		each := make([]latencies, len(stmts))
		for range coldN {
			start := time.Now()
			for i, s := range stmts {
				t := time.Now()
				rows, err := e.ch.Query(ctx, s.sql, s.args...)
				if err != nil {
					return nil, fmt.Errorf("replay %s: %w", s.sql, err)
				}
				for rows.Next() {
				}
				rows.Close()
				each[i] = append(each[i], time.Since(t))
			}
			bare = append(bare, time.Since(start))
		}
		r.bareP50, r.bareP99 = ms(bare.quantile(.5)), ms(bare.quantile(.99))
		for i, s := range stmts {
			r.stmts = append(r.stmts, stmtTime{sql: s.sql, ms: ms(each[i].quantile(.5))})
		}
		e.log.Info("query", "endpoint", ep.name, "api_p50_ms", r.apiP50, "cold_p50_ms", r.coldP50, "bare_p50_ms", r.bareP50, "statements", r.statements)
		out = append(out, r)
	}
	return out, nil
}

// httpClient keeps connections to the product's processes open.
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 2 * time.Minute}

// waitServed waits until the query process serves path, as a client
// would: the projector has just drained, and the query process keeps its
// list of waves for up to a second (query's listTTL), so a wave sealed
// within that second is answered 409 wave_open or 503 results_pending
// until the list is read again.
// It returns the served request's time.
func waitServed(ctx context.Context, addr, token, path string) (time.Duration, error) {
	for deadline := time.Now().Add(time.Minute); ; {
		d, err := timedGet(ctx, addr, path, token)
		if err == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not served a minute after the drain: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
