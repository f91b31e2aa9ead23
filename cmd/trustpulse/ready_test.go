package main

import (
	"net/http"
	"testing"
	"time"
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
