package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// firstResult is the first request for a released wave on a query
// process that has never served it: nothing of the wave is in its caches
// (aggregates, the guard's response types), as on the first request after
// the wave is sealed and released.
type firstResult struct {
	name string
	ms   runs // one fresh query process per run
}

// benchFirst times the first overview and the first department heatmap
// of wave: each run starts a query process of its own beside the
// harness's (same servers, same record of served results), makes one
// request that warms its connections and the token cache without touching
// the wave (GET /waves), then times the first request for the wave.
func benchFirst(ctx context.Context, e *env, token, wave string, rounds int) ([]firstResult, error) {
	var out []firstResult
	for _, ep := range endpoints(wave)[:2] {
		r := firstResult{name: ep.name}
		for range rounds {
			p, err := e.startAs(ctx, "query-first", "query")
			if err != nil {
				return nil, err
			}
			if _, err := timedGet(ctx, p.addr, "/v1/orgs/bench/waves", token); err != nil {
				e.stop("query-first")
				return nil, err
			}
			d, err := timedGet(ctx, p.addr, ep.path, token)
			e.stop("query-first")
			if err != nil {
				return nil, err
			}
			r.ms = append(r.ms, ms(d))
		}
		e.log.Info("first request", "endpoint", ep.name, "ms", r.ms)
		out = append(out, r)
	}
	return out, nil
}

// timedGet makes one GET with the token and times it to the last byte.
func timedGet(ctx context.Context, addr, path, token string) (time.Duration, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return time.Since(start), nil
}

// slowest names a request's slowest statements (bare), with their share
// of the request's bare time: where the first request's time goes.
func slowest(q queryResult, n int) string {
	s := slices.Clone(q.stmts)
	slices.SortStableFunc(s, func(a, b stmtTime) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return 0
	})
	total := 0.0
	for _, x := range q.stmts {
		total += x.ms
	}
	var parts []string
	for _, x := range s[:min(n, len(s))] {
		parts = append(parts, fmt.Sprintf("%s %.0f ms (%.0f%%)", stmtLabel(x.sql), x.ms, 100*x.ms/total))
	}
	return strings.Join(parts, "; ")
}

// stmtLabel says what a statement of the query service reads.
func stmtLabel(sql string) string {
	one := strings.Join(strings.Fields(sql), " ")
	switch {
	case strings.Contains(one, "GROUP BY department, team, location, tenure_band"):
		return "the guard's response types of the wave (`uniqExact(response_id)` per cohort type)"
	case strings.Contains(one, "FROM invitations"):
		return "invitations"
	}
	if len(one) > 90 {
		one = one[:90] + "…"
	}
	return "`" + strings.ReplaceAll(one, "`", "") + "`"
}
