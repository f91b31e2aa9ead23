package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestClickHouseOutage: with serve's local ClickHouse killed (and its port
// held, so that serve's restarts fail until the test lets go), the query
// API answers 503 unavailable problem+json, never 500, and /readyz 503;
// serve restarts the server once it can and logs it, queries answer 200
// again, and a response submitted during the outage is counted exactly
// once (issue 12, item 3). The dashboard's page is a 503 too.
func TestClickHouseOutage(t *testing.T) {
	cfg := testConfig(t)
	cfg.ClickHouseAddr = "" // serve's own local server, not the shared one
	cfg.MetricsAddr = "127.0.0.1:0"
	logs := &syncBuffer{}
	m, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m.RestartWait = 50 * time.Millisecond
	m.Start()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs)
		}
	})
	analyst := authorize(t, m, schemas.RoleAnalyst)
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse", OpensAt: time.Now().Add(-time.Minute), ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 12
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohortsOf(schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}, n))
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens[:n-1] {
		submit(t, m, tok, steady(i))
	}
	waves := m.QueryURL + "/v1/orgs/acme/waves"
	if status, body := getAs(t, analyst, waves); status != http.StatusOK {
		t.Fatalf("before the outage: %d %s", status, body)
	}
	dash := newDashClient(t, m)
	if resp, _ := dash.signIn(analyst); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("dashboard sign-in: %d", resp.StatusCode)
	}

	// Kill the server, and hold its native port so that its restarts fail
	// until the test lets go.
	srv := m.Stack.LocalClickHouse()
	if err := syscall.Kill(srv.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var hold net.Listener
	for deadline := time.Now().Add(10 * time.Second); hold == nil; time.Sleep(10 * time.Millisecond) {
		if hold, err = net.Listen("tcp", srv.Addr); err != nil && time.Now().After(deadline) {
			t.Fatalf("hold %s: %v", srv.Addr, err)
		}
	}
	defer func() {
		if hold != nil {
			hold.Close()
		}
	}()
	go func() { // accept and drop: a port that answers nothing
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	// Down: 503 unavailable problem+json, never another 5xx; a cached
	// token or wave list may still answer 200 for a moment.
	seen503 := false
	for deadline := time.Now().Add(30 * time.Second); !seen503; time.Sleep(100 * time.Millisecond) {
		seen503 = expectUp503(t, analyst, waves)
		if time.Now().After(deadline) {
			t.Fatal("the query API never answered 503 with ClickHouse down")
		}
	}
	for _, u := range []string{waves, m.QueryURL + "/v1/orgs/acme/trends", m.QueryURL + "/v1/orgs/acme/waves/w1/scores"} {
		if !expectUp503(t, analyst, u) {
			t.Errorf("%s with ClickHouse down: 200", u)
		}
	}
	if status, body := getAs(t, "", m.QueryURL+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with ClickHouse down: %d %s", status, body)
	}
	if resp, _ := dash.do(http.MethodGet, "/", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dashboard with ClickHouse down: %d, want 503", resp.StatusCode)
	}
	submit(t, m, tokens[n-1], steady(n-1)) // ingest needs only NATS
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	// serve tries to restart it, and fails while the port is held.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), `msg="clickhouse did not start; retrying"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve never tried to restart ClickHouse")
		}
	}
	if !expectUp503(t, analyst, waves) {
		t.Error("the query API answered 200 while ClickHouse's port was still held")
	}
	if status, _ := getAs(t, "", m.QueryURL+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with ClickHouse down: %d", status)
	}

	// Back: serve restarts it.
	hold.Close()
	hold = nil
	for deadline := time.Now().Add(2 * time.Minute); m.Stack.LocalClickHouse() == srv; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve never restarted ClickHouse after its port was freed")
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := getAs(t, "", m.QueryURL+"/readyz"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200 after ClickHouse was restarted")
		}
	}
	if status, body := getAs(t, analyst, waves); status != http.StatusOK {
		t.Errorf("after the restart: %d %s", status, body)
	}
	if !strings.Contains(logs.String(), `msg="clickhouse exited; restarting" status="signal: killed" attempt=1`) {
		t.Error(`no log line "clickhouse exited; restarting" with the exit status and the attempt`)
	}
	waitWaveReleased(t, m, "w1")
	if got := respondents(t, m, analyst, m.QueryURL+"/v1/orgs/acme/waves/w1/scores"); got != n {
		t.Errorf("respondents after the outage: %d, want %d", got, n)
	}
	var rows uint64
	if err := m.Stack.CH.QueryRow(ctx, `SELECT count() FROM answers WHERE org = 'acme' AND wave_id = 'w1' AND question_id = 'enps'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Errorf("answers rows of enps: %d, want %d (each response projected exactly once)", rows, n)
	}
	// The metrics saw the outage: one restart, failed queries, 503s.
	sc := scrapeMetrics(t, m)
	if v, _ := sc.value("trustpulse_clickhouse_restarts_total", nil); v != 1 {
		t.Errorf("trustpulse_clickhouse_restarts_total = %v, want 1", v)
	}
	for _, w := range []metricWant{
		{"trustpulse_clickhouse_errors_total", map[string]string{"op": "query"}, 1},
		{"trustpulse_http_request_duration_seconds", map[string]string{"app": "query", "status_class": "5xx"}, 1},
		{"trustpulse_http_request_duration_seconds", map[string]string{"app": "dashboard", "status_class": "5xx"}, 1},
	} {
		if v, _ := sc.value(w.name, w.labels); v < w.min {
			t.Errorf("%s%v = %v after the outage, want at least %v", w.name, w.labels, v, w.min)
		}
	}
}

// expectUp503 gets u and reports whether it answered 503 unavailable
// problem+json; any other answer than that or 200 fails the test.
func expectUp503(t *testing.T, token, u string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	decodeErr := json.NewDecoder(resp.Body).Decode(&p)
	switch {
	case resp.StatusCode == http.StatusOK:
		return false
	case resp.StatusCode == http.StatusServiceUnavailable && decodeErr == nil && p.Code == "unavailable" &&
		resp.Header.Get("Content-Type") == schemas.ProblemContentType:
		return true
	}
	t.Fatalf("%s with ClickHouse down: %d %s %+v (%v), want 503 unavailable problem+json", u, resp.StatusCode, resp.Header.Get("Content-Type"), p, decodeErr)
	return false
}

// TestNATSOutage: with NATS gone, what needs it (the guard's record, live
// participation) answers 503 unavailable problem+json, never 500.
func TestNATSOutage(t *testing.T) {
	m := mustMain(t, nil)
	sales := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	redWave(t, m, "w1", time.Now().Add(-time.Hour), cohortsOf(sales, 12), func(i int) *redResponse {
		return &redResponse{answers: all(1 + i%5)}
	})
	if err := m.Admin.OpenWave(context.Background(), "acme", schemas.WaveOpened{WaveID: "w2", SurveyID: redSurvey.SurveyID, OpensAt: time.Now().Add(-time.Minute), ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	analyst := authorize(t, m, schemas.RoleAnalyst)
	m.Stack.EmbeddedNATS().Shutdown()
	o := m.QueryURL + "/v1/orgs/acme"
	// Each waits for its request's deadline (10 s) before it answers.
	for _, u := range []string{o + "/waves/w1/scores?department=Sales", o + "/waves/w2/live"} {
		if !expectUp503(t, analyst, u) {
			t.Errorf("%s with NATS down: 200, want 503", u)
		}
	}
}
