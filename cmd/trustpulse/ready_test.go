package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestReadiness: /livez (and its old name /healthz) answers while the
// process runs; /readyz answers 200 while NATS and ClickHouse do, and 503
// once NATS is gone (issue 12, item 3, in part).
func TestReadiness(t *testing.T) {
	m := mustMain(t, nil)
	for _, base := range []string{m.IngestURL, m.QueryURL} {
		for _, path := range []string{"/livez", "/healthz", "/readyz"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s%s: %d", base, path, resp.StatusCode)
			}
		}
	}
	m.Stack.EmbeddedNATS().Shutdown()
	for _, base := range []string{m.IngestURL, m.QueryURL} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz with NATS down: %d, want 503", base, resp.StatusCode)
			}
		}
		resp, err := http.Get(base + "/livez")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s/livez with NATS down: %d, want 200 (the process lives)", base, resp.StatusCode)
		}
	}
}

// TestReadinessProjectorLag: a process running the projector is ready
// while the projection is within --ready-max-lag events of the event
// stream, and not while it lags further: 503 projector_lagging naming the
// lag, on the query API of --target=all and on --health-addr of
// --target=projector (a second process on the same NATS and ClickHouse,
// reporting the shared checkpoint), while /livez stays 200. Once the
// projector runs again and catches up, both are ready (issue 12, item 3).
func TestReadinessProjectorLag(t *testing.T) {
	var stopped atomic.Bool
	hook := func(projector.Stage) error {
		if stopped.Load() {
			return errors.New("stopped by the test")
		}
		return nil
	}
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.ReadyMaxLag = 3
	m, err := Open(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Projector.Hook, m.RestartWait = hook, 50*time.Millisecond
	m.Admin.KeepCohortsForTest(true)
	m.Start()
	t.Cleanup(func() { _ = m.Close() })

	pcfg := cfg
	pcfg.Target, pcfg.DataDir, pcfg.NATSURL = "projector", t.TempDir(), m.Stack.NATSURL
	p, err := Open(ctx, pcfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Projector.Hook, p.RestartWait = hook, 50*time.Millisecond
	p.Start()
	t.Cleanup(func() { _ = p.Close() })
	if p.HealthURL == "" || p.QueryURL != "" || p.IngestURL != "" {
		t.Fatalf("--target=projector listens on health %q, query %q, ingest %q; want health only", p.HealthURL, p.QueryURL, p.IngestURL)
	}

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type") + " " + string(b)
	}
	waitFor := func(url string, want int, what string, ok func(body string) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			status, body := get(url)
			if status == want && ok(body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %d %s, want %d", what, url, status, body, want)
			}
		}
	}
	anything := func(string) bool { return true }
	ready := []string{m.QueryURL + "/readyz", p.HealthURL + "/readyz"}
	for _, u := range ready {
		waitFor(u, http.StatusOK, "at start", anything)
	}

	stopped.Store(true)
	openWave(t, m)
	cohort := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	if _, err := m.Admin.IssueInvitations(ctx, "acme", "w1", []schemas.Cohort{cohort, cohort, cohort, cohort, cohort}); err != nil {
		t.Fatal(err)
	}
	for _, u := range ready {
		waitFor(u, http.StatusServiceUnavailable, "with the projector stopped", func(body string) bool {
			return strings.HasPrefix(body, "application/problem+json") && strings.Contains(body, "projector_lagging") &&
				strings.Contains(body, "lag is") && strings.Contains(body, "bound of 3")
		})
	}
	for _, u := range []string{m.QueryURL + "/livez", p.HealthURL + "/livez", p.HealthURL + "/healthz"} {
		if status, body := get(u); status != http.StatusOK {
			t.Errorf("%s while the projector lags: %d %s, want 200 (readiness, not liveness)", u, status, body)
		}
	}

	stopped.Store(false)
	for _, u := range ready {
		waitFor(u, http.StatusOK, "after the projector caught up", anything)
	}
}
