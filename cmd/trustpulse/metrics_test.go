package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// scrape is one scrape of /metrics: the text and its families by name.
type scrape struct {
	text string
	fams map[string]*dto.MetricFamily
}

// scrapeMetrics fetches and parses m's /metrics.
func scrapeMetrics(t *testing.T, m *Main) scrape {
	t.Helper()
	resp, err := http.Get(m.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return scrape{text: string(body), fams: fams}
}

// value adds up the family's samples whose labels include want (a
// histogram's sample count, a counter's or gauge's value); found reports
// whether any sample matched.
func (s scrape) value(name string, want map[string]string) (total float64, found bool) {
	f := s.fams[name]
	if f == nil {
		return 0, false
	}
	for _, mt := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range mt.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case mt.Histogram != nil:
			total += float64(mt.Histogram.GetSampleCount())
		case mt.Counter != nil:
			total += mt.Counter.GetValue()
		case mt.Gauge != nil:
			total += mt.Gauge.GetValue()
		case mt.Untyped != nil:
			total += mt.Untyped.GetValue()
		}
	}
	return total, found
}

// sampleNames are the names a PromQL expression may use: each family's,
// and a histogram's _bucket, _sum and _count.
func (s scrape) sampleNames() map[string]bool {
	out := map[string]bool{}
	for name, f := range s.fams {
		out[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[name+suffix] = true
			}
		}
	}
	return out
}

// metricWant is a family a scrape must hold after the test's traffic:
// samples with the labels, adding up to at least min (0: present).
type metricWant struct {
	name   string
	labels map[string]string
	min    float64
}

// wantedMetrics are the families the traffic of TestMetrics must show.
var wantedMetrics = []metricWant{
	{"trustpulse_build_info", map[string]string{"goversion": runtime.Version()}, 1},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "ingest", "route": "/s/:token", "method": "GET", "status_class": "2xx"}, 1},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "ingest", "route": "/s/:token", "method": "POST", "status_class": "4xx"}, 1},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "ingest", "route": "/v1/responses", "status_class": "2xx"}, 5},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "ingest", "route": "/v1/responses", "status_class": "4xx"}, 2},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "query", "route": "/v1/orgs/:org/waves/:wave/scores", "status_class": "2xx"}, 1},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "dashboard", "route": "/dashboard/login", "status_class": "2xx"}, 1},
	{"trustpulse_http_request_duration_seconds", map[string]string{"app": "admin", "route": "/v1/orgs/:org/mail-failures", "status_class": "2xx"}, 1},
	{"trustpulse_submissions_accepted_total", nil, 5},
	{"trustpulse_submissions_refused_total", map[string]string{"code": "token_used"}, 2},
	{"trustpulse_submissions_refused_total", map[string]string{"code": "token_unknown"}, 1},
	{"trustpulse_projector_events_total", map[string]string{"partition": "0"}, 1},
	{"trustpulse_projector_rows_written_total", map[string]string{"partition": "0", "table": "answers"}, 5},
	{"trustpulse_projector_batch_duration_seconds", map[string]string{"partition": "0"}, 1},
	{"trustpulse_projector_phase_seconds_total", map[string]string{"partition": "0", "phase": "insert"}, 1e-9},
	{"trustpulse_projector_phase_seconds_total", map[string]string{"partition": "0", "phase": "lookup"}, 1e-9},
	{"trustpulse_projector_insert_seconds_total", map[string]string{"partition": "0", "table": "answers"}, 1e-9},
	{"trustpulse_projector_lag_events", map[string]string{"partition": "0"}, 0},
	{"trustpulse_guard_decisions_total", map[string]string{"outcome": "served"}, 1},
	{"trustpulse_guard_decisions_total", map[string]string{"outcome": "suppressed"}, 0},
	{"trustpulse_guard_decision_duration_seconds", nil, 1},
	{"trustpulse_mail_sent_total", nil, 6},
	{"trustpulse_mail_send_failures_total", map[string]string{"kind": "permanent"}, 0},
	{"trustpulse_mail_outbox_messages", nil, 0},
	{"trustpulse_nats_disconnects_total", nil, 0},
	{"trustpulse_nats_reconnects_total", nil, 0},
	{"trustpulse_nats_async_errors_total", nil, 0},
	{"trustpulse_clickhouse_errors_total", map[string]string{"op": "exec"}, 1},
	{"trustpulse_clickhouse_restarts_total", nil, 0},
	{"go_goroutines", nil, 1},
	{"process_cpu_seconds_total", nil, 0},
}

// missing lists what of want s lacks.
func (s scrape) missing(want []metricWant) []string {
	var out []string
	for _, w := range want {
		v, found := s.value(w.name, w.labels)
		if !found || v < w.min {
			out = append(out, fmt.Sprintf("%s%v = %v (found %v), want at least %v", w.name, w.labels, v, found, w.min))
		}
	}
	return out
}

// TestMetrics runs the program (--target=all) with metrics on, sends real
// traffic — survey pages, submissions accepted and refused, the admin API,
// the dashboard, a released wave's scores through the guard, a failing
// ClickHouse call — and scrapes /metrics: the families are there with the
// traffic counted, nothing of the people (ids, emails, names, links) or
// of the organisation is in it, promtool finds no problem, and every
// metric the Grafana dashboard plots exists.
func TestMetrics(t *testing.T) {
	m := mustMainWith(t, nil, func(cfg *Config) {
		cfg.MetricsAddr = "127.0.0.1:0"
		cfg.AdminToken = "metrics-test-admin-token-0123456789abcdef"
	})
	if m.MetricsURL == "" || m.MetricsURL == m.IngestURL || m.MetricsURL == m.QueryURL {
		t.Fatalf("metrics at %q, want an address of their own (ingest %s, query %s)", m.MetricsURL, m.IngestURL, m.QueryURL)
	}
	ctx := context.Background()
	openWave(t, m)

	// Six people, whose ids, emails, names and cohort values must appear
	// nowhere.
	var roster strings.Builder
	secrets := []string{"acme", "Engquuxring", "Platquuxform", "Berquuxlin"}
	for i := range 6 {
		id, email, name := fmt.Sprintf("emp-q7xv-%d", i), fmt.Sprintf("zelda.quux%d@example.net", i), fmt.Sprintf("Zelda Quuxington %d", i)
		fmt.Fprintf(&roster, "%s,%s,%s,Engquuxring,Platquuxform,Berquuxlin,,2022-01-0%d\n", id, email, name, i+1)
		secrets = append(secrets, id, email, name, url.QueryEscape(email))
	}
	links := inviteByEmail(t, m, roster.String(), 6)
	tokens := make([]string, len(links))
	for i, l := range links {
		tok, ok := strings.CutPrefix(l, m.IngestURL+"/s/")
		if !ok || len(tok) < 16 {
			t.Fatalf("emailed link %q is not a survey link of %s", l, m.IngestURL)
		}
		tokens[i] = tok
		secrets = append(secrets, l, tok)
	}

	// The survey page, five responses, and refusals: a link used twice
	// (API and form), a forged link.
	if status, body := getAs(t, "", links[0]); status != http.StatusOK {
		t.Fatalf("survey page: %d %s", status, body)
	}
	answers := map[string]int{"trust-a": 4, "trust-b": 3, "auto": 5, "moti": 4, "enps": 9}
	for _, tok := range tokens[:5] {
		submit(t, m, tok, answers)
	}
	forged := "forgedtoken" + strings.Repeat("x", 30)
	secrets = append(secrets, forged)
	for _, tc := range []struct {
		token string
		want  int
	}{{tokens[0], http.StatusConflict}, {forged, http.StatusNotFound}} {
		body, _ := json.Marshal(map[string]any{"token": tc.token, "answers": answers})
		resp, err := http.Post(m.IngestURL+"/v1/responses", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("refused submission: %d, want %d", resp.StatusCode, tc.want)
		}
	}
	resp, err := http.PostForm(links[1], url.Values{"a.trust-a": {"4"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("form of a used link: %d, want 409", resp.StatusCode)
	}

	// The admin API, the dashboard's sign-in page, and a released wave's
	// scores, which the guard decides.
	if status, body := getAs(t, m.Config.AdminToken, m.AdminURL+"/v1/orgs/acme/mail-failures"); status != http.StatusOK {
		t.Fatalf("admin API: %d %s", status, body)
	}
	if status, body := getAs(t, "", m.QueryURL+"/dashboard/login"); status != http.StatusOK {
		t.Fatalf("dashboard sign-in: %d %s", status, body)
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if r := waitScores(t, m, ""); r.Respondents.N == nil || *r.Respondents.N != 5 {
		t.Fatalf("scores of w1: respondents %v, want 5", r.Respondents.N)
	}
	// A ClickHouse call that fails, through the connection every part uses.
	if err := m.Stack.CH.Exec(ctx, "SELECT no_such_function_in_clickhouse()"); err == nil {
		t.Fatal("a call of an unknown function succeeded")
	}

	// The projector and the postman count asynchronously: scrape until the
	// traffic shows.
	s := scrapeMetrics(t, m)
	for deadline := time.Now().Add(30 * time.Second); len(s.missing(wantedMetrics)) > 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		s = scrapeMetrics(t, m)
	}
	keepScrape(t, s.text)

	t.Run("Families", func(t *testing.T) {
		for _, problem := range s.missing(wantedMetrics) {
			t.Error(problem)
		}
	})
	t.Run("NoPersonalData", func(t *testing.T) {
		lower := strings.ToLower(s.text)
		for _, secret := range secrets {
			if strings.Contains(lower, strings.ToLower(secret)) {
				t.Errorf("the scrape holds %q", secret)
			}
		}
		// Every route label is a template: no survey path but /s/:token
		// and /s/thanks.
		for _, mt := range s.fams["trustpulse_http_request_duration_seconds"].GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "route" && strings.HasPrefix(l.GetValue(), "/s/") && l.GetValue() != "/s/:token" && l.GetValue() != "/s/thanks" {
					t.Errorf("route label %q is not a template", l.GetValue())
				}
			}
		}
	})
	t.Run("Promtool", func(t *testing.T) {
		promtoolCheck(t, s.text)
	})
	t.Run("Dashboard", func(t *testing.T) {
		names := s.sampleNames()
		for _, expr := range dashboardExprs(t) {
			for _, name := range promqlMetric.FindAllString(expr, -1) {
				if !names[name] {
					t.Errorf("the dashboard plots %s (in %q), which no scrape holds", name, expr)
				}
			}
		}
	})
	t.Run("NATSDisconnect", func(t *testing.T) {
		m.Stack.EmbeddedNATS().Shutdown()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			s := scrapeMetrics(t, m)
			if v, _ := s.value("trustpulse_nats_disconnects_total", nil); v >= 1 {
				// What cannot be read is absent, not a stale number.
				if _, found := s.value("trustpulse_projector_lag_events", nil); found {
					t.Error("the projector's lag is exported while NATS is down")
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("NATS went down, and trustpulse_nats_disconnects_total stayed 0")
			}
		}
	})
}

// promqlMetric matches the metric names of a PromQL expression: those of
// trustpulse and of the Go and process collectors.
var promqlMetric = regexp.MustCompile(`\b(?:trustpulse|go|process)_[a-zA-Z0-9_]+\b`)

// dashboardPath is the Grafana dashboard, from this package's folder.
var dashboardPath = filepath.Join("..", "..", "deploy", "grafana", "trustpulse.json")

// dashboardExprs parses the Grafana dashboard and returns every PromQL
// expression of its panels' targets ("expr") and of its variables
// ("definition").
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	if doc["title"] == nil || doc["panels"] == nil {
		t.Fatalf("%s has no title or panels", dashboardPath)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(exprs) < 10 {
		t.Fatalf("%s has %d PromQL expressions; want a panel per family", dashboardPath, len(exprs))
	}
	return exprs
}

// promtoolCheck runs `promtool check metrics` on a scrape: it must find
// no problem (naming, help texts, units).
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool := needTool(t, "promtool", "deploy/scripts/ensure-promtool.sh installs Debian's prometheus package")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// needTool returns the path of a command-line tool the test needs. A
// missing tool fails the test where CI or TRUSTPULSE_REQUIRE_TOOLS is set
// (make test installs it); elsewhere it skips, saying how to install it.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" || os.Getenv("TRUSTPULSE_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is not installed; %s (make test-deps runs it)", name, install)
	}
	t.Skipf("%s is not installed; %s (make test-deps runs it)", name, install)
	return ""
}

// keepScrape writes the scrape to test-output/metrics for inspection.
func keepScrape(t *testing.T, text string) {
	t.Helper()
	path := filepath.Join(outputDir(t, "metrics"), "scrape.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsPerTarget: each target alone serves /metrics on its own
// address, with the build info and the families of the parts it runs, and
// promtool finds no problem.
func TestMetricsPerTarget(t *testing.T) {
	for _, tc := range []struct {
		target, family, healthPath string
	}{
		{"ingest", "trustpulse_mail_outbox_messages", "/livez"},
		{"query", "trustpulse_guard_decisions_total", "/livez"},
		{"projector", "trustpulse_projector_lag_events", "/livez"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Target, cfg.MetricsAddr = tc.target, "127.0.0.1:0"
			m, err := Open(context.Background(), cfg, testenv.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			m.Start()
			t.Cleanup(func() {
				if err := m.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			base := map[string]string{"ingest": m.IngestURL, "query": m.QueryURL, "projector": m.HealthURL}[tc.target]
			if status, body := getAs(t, "", base+tc.healthPath); status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.healthPath, status, body)
			}
			app := map[string]string{"ingest": "ingest", "query": "query", "projector": "health"}[tc.target]
			want := []metricWant{
				{"trustpulse_build_info", nil, 1},
				{tc.family, nil, 0},
				{"trustpulse_http_request_duration_seconds", map[string]string{"app": app, "route": tc.healthPath}, 1},
			}
			s := scrapeMetrics(t, m)
			for deadline := time.Now().Add(10 * time.Second); len(s.missing(want)) > 0 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				s = scrapeMetrics(t, m)
			}
			for _, problem := range s.missing(want) {
				t.Error(problem)
			}
			promtoolCheck(t, s.text)
		})
	}
}

// TestPprof: Go's profiles are served on the metrics address with --pprof
// only: off by default (404), and with it a CPU profile of a running
// ingest process is a gzipped protobuf that pprof's own parser reads;
// --pprof with the metrics off is refused.
func TestPprof(t *testing.T) {
	open := func(pprof bool) *Main {
		cfg := testConfig(t)
		cfg.Target, cfg.MetricsAddr, cfg.Pprof = "ingest", "127.0.0.1:0", pprof
		m, err := Open(context.Background(), cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		t.Cleanup(func() {
			if err := m.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return m
	}
	m := open(false)
	if status, _ := getAs(t, "", m.MetricsURL+"/debug/pprof/"); status != http.StatusNotFound {
		t.Fatalf("without --pprof, /debug/pprof/: %d, want 404", status)
	}
	m = open(true)
	status, body := getAs(t, "", m.MetricsURL+"/debug/pprof/profile?seconds=1")
	if status != http.StatusOK {
		t.Fatalf("with --pprof, the CPU profile: %d %s", status, body)
	}
	prof, err := profile.ParseData([]byte(body))
	if err != nil {
		t.Fatalf("the CPU profile does not parse: %v", err)
	}
	if len(prof.SampleType) == 0 || prof.SampleType[len(prof.SampleType)-1].Type != "cpu" {
		t.Fatalf("profile sample types %v, want cpu", prof.SampleType)
	}

	cfg := testConfig(t)
	cfg.MetricsAddr, cfg.Pprof = "off", true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--pprof") {
		t.Fatalf("--pprof with --metrics-addr off: %v, want an error naming --pprof", err)
	}
}
