package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

const threshold = 5

// testConfig is the program's config for a test: free ports, an embedded
// NATS server in a temporary directory, a fresh database on the shared test
// ClickHouse, small projector batches.
func testConfig(t *testing.T) Config {
	t.Helper()
	_, chCfg := testenv.ClickHouse(t)
	cfg := Config{
		Target: "all", DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", NATSReplicas: 1, NATSSync: "always",
		SealKeyFile: filepath.Join(t.TempDir(), "seal.key"), MaxInFlight: 256, MaxConnections: ingest.DefaultMaxConnections,
		// Tests make many failed requests from one address on purpose;
		// TestRateLimits sets small limits of its own.
		FailureRate: 1000, FailureBurst: 100000,
		ClickHouseAddr: chCfg.Addr, ClickHouseDatabase: chCfg.Database, ClickHouseUser: "default",
		IngestAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", ReadyMaxLag: 10000,
		SMTPPort: 587, SMTPTLS: "none", MailFrom: "pulse@example.org", MailFromName: "Acme pulse", MailRate: 1000,
		Threshold: threshold, SealGrace: 0, BatchSize: 50, BatchWait: 20 * time.Millisecond, ProjectorPartitions: 1,
		LogLevel: "info",
		// Above ReadTimeout: a slow client under -race cannot outlast it.
		ShutdownTimeout: 20 * time.Second,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mustMain runs the real program with testConfig, as the binary does.
func mustMain(t *testing.T, hook func(projector.Stage) error) *Main {
	t.Helper()
	return mustMainWith(t, hook, func(*Config) {})
}

// mustMainWith is mustMain with the config changed by edit.
func mustMainWith(t *testing.T, hook func(projector.Stage) error, edit func(*Config)) *Main {
	t.Helper()
	cfg := testConfig(t)
	edit(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Projector.Hook = hook
	m.RestartWait = 50 * time.Millisecond
	// Most tests plant people in small cohorts to show what the guard
	// does with them, so cohorts are stored as planted; runWave and
	// inviteByEmail invite as serve does, generalising them.
	m.Admin.KeepCohortsForTest(true)
	m.Start()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	authorize(t, m, schemas.RoleAnalyst)
	return m
}

var e2eSurvey = schemas.SurveyPublished{SurveyID: "pulse", Title: "Pulse", Questions: []schemas.Question{
	{ID: "trust-a", Text: "I trust my manager.", Dimension: schemas.Trust, Driver: "manager"},
	{ID: "trust-b", Text: "Leaders explain decisions.", Dimension: schemas.Trust, Driver: "leadership"},
	{ID: "auto", Text: "I decide how I reach my goals.", Dimension: schemas.Empowerment, Driver: "autonomy"},
	{ID: "moti", Text: "My work motivates me.", Dimension: schemas.Motivation, Driver: "meaning"},
	{ID: "stay", Text: "I see myself here in two years.", Dimension: schemas.Motivation, Optional: true, Driver: "meaning"},
	{ID: "enps", Text: "Recommend us?", Dimension: schemas.ENPS},
}}

// sent is one response as the test sent it.
type sent struct {
	// dept is the department stored with the response: the invitee's own,
	// or schemas.OtherDepartments where too few shared it.
	dept    string
	answers map[string]int
}

// org sizes per department: Legal and Finance are under the threshold, so
// their invitations are stored under "other departments" (3 + 2 = 5).
var deptSizes = map[string]int{"Engineering": 70, "Sales": 40, "Legal": 3, "Finance": 2}

// storedDeptSizes are the department sizes as stored.
var storedDeptSizes = map[string]int{"Engineering": 70, "Sales": 40, schemas.OtherDepartments: 5}

// storedCohorts reads, with a NATS client, the cohort the wave's ledger
// holds for each token's invitation, and checks what the stores promise:
// each is the invitee's own or a generalisation of it along the ladder,
// and at least k of the wave's invitations hold it.
func storedCohorts(t *testing.T, m *Main, wave string, tokens []string, own []schemas.Cohort) []schemas.Cohort {
	t.Helper()
	ctx := context.Background()
	kv, err := m.Stack.JS.KeyValue(ctx, schemas.WaveLedgerBucket("acme", wave))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]schemas.Cohort, len(tokens))
	held := map[schemas.CohortKey]int{}
	for i, tok := range tokens {
		e, err := kv.Get(ctx, ingest.TokenHash(tok))
		if err != nil {
			t.Fatalf("ledger entry of invitation %d: %v", i, err)
		}
		var inv schemas.Invitation
		if err := json.Unmarshal(e.Value(), &inv); err != nil {
			t.Fatal(err)
		}
		generalises := false
		for _, level := range schemas.GeneraliseLadder {
			generalises = generalises || level(own[i]).Equal(inv.Cohort)
		}
		if !generalises {
			t.Fatalf("invitation %d of %+v stored as %+v", i, own[i], inv.Cohort)
		}
		out[i] = inv.Cohort
		held[inv.Cohort.Key()]++
	}
	for c, n := range held {
		if n < threshold {
			t.Fatalf("stored cohort %+v is held by %d invitations, fewer than k=%d", c, n, threshold)
		}
	}
	return out
}

// runWave publishes the survey, opens a wave, invites everyone, submits a
// response for each through HTTP and closes the wave.
func runWave(t *testing.T, m *Main, rng *rand.Rand) []sent {
	t.Helper()
	ctx := context.Background()
	openWave(t, m)
	m.Admin.KeepCohortsForTest(false)
	var cohorts []schemas.Cohort
	for _, d := range sortedKeys(deptSizes) {
		for range deptSizes[d] {
			cohorts = append(cohorts, schemas.Cohort{Department: d, Team: d + "-1", Location: "Berlin", TenureBand: "1-2y"})
		}
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	stored := storedCohorts(t, m, "w1", tokens, cohorts)
	responses := make([]sent, len(tokens))
	for i := range tokens {
		a := map[string]int{}
		for _, q := range e2eSurvey.Questions {
			if q.Optional && rng.IntN(4) == 0 {
				continue
			}
			lo, hi := q.Dimension.Range()
			a[q.ID] = lo + rng.IntN(hi-lo+1)
		}
		responses[i] = sent{dept: stored[i].Department, answers: a}
	}
	// Submit through HTTP, 8 at a time.
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body, _ := json.Marshal(map[string]any{"token": tokens[i], "answers": responses[i].answers})
				resp, err := http.Post(m.IngestURL+"/v1/responses", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					continue
				}
				if resp.StatusCode != http.StatusAccepted {
					b, _ := io.ReadAll(resp.Body)
					t.Errorf("submit %d: %d %s", i, resp.StatusCode, b)
				}
				resp.Body.Close()
			}
		}()
	}
	for i := range tokens {
		work <- i
	}
	close(work)
	wg.Wait()

	// An open wave serves no scores (once the projector knows the wave).
	status, body := get(t, m, "/v1/orgs/acme/waves/w1/scores")
	for deadline := time.Now().Add(time.Minute); status == http.StatusNotFound && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		status, body = get(t, m, "/v1/orgs/acme/waves/w1/scores")
	}
	if status != http.StatusConflict || !strings.Contains(body, `"wave_open"`) {
		t.Fatalf("scores of an open wave: %d %s", status, body)
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	return responses
}

// openWave publishes e2eSurvey for acme and opens wave w1 for an hour.
func openWave(t *testing.T, m *Main) time.Time { return openWaveOf(t, m, e2eSurvey) }

// openWaveOf publishes survey for acme and opens wave w1 of it for an hour.
func openWaveOf(t *testing.T, m *Main, survey schemas.SurveyPublished) time.Time {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", survey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: survey.SurveyID, OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return now
}

// inviteByEmail imports a roster (CSV rows after the header), invites
// everyone to w1 and returns the survey links from their emails in the mail
// sink.
func inviteByEmail(t *testing.T, m *Main, rosterRows string, n int) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := ingest.ParseRoster(strings.NewReader(strings.Join(ingest.RosterColumns, ",")+"\n"+rosterRows), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admin.ImportRoster(ctx, "acme", rows, nil); err != nil {
		t.Fatal(err)
	}
	m.Admin.KeepCohortsForTest(false)
	if _, err := m.Admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{}); err != nil {
		t.Fatal(err)
	}
	links, err := emailedLinks(ctx, m, n)
	if err != nil {
		t.Fatal(err)
	}
	return links
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// testTokens holds each test program's analyst token for acme.
var testTokens sync.Map // *Main -> string

// authorize issues an API token of role for acme and waits until the query
// API accepts it (the projector has carried it to ClickHouse).
func authorize(t *testing.T, m *Main, role schemas.Role) string {
	t.Helper()
	token, _, err := m.Admin.IssueToken(context.Background(), "acme", role, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitTokenUsable(t, m, "acme", token)
	if role == schemas.RoleAnalyst {
		testTokens.Store(m, token)
	}
	return token
}

// waitTokenUsable waits until the query API accepts token (once the
// projector has written it). Each poll comes from a client address of its
// own (X-Forwarded-For, read when a test trusts that header): a poll before
// the token is projected is a failed request, and a few from one client
// would spend the budget of a test's tight rate limit.
func waitTokenUsable(t *testing.T, m *Main, org, token string) {
	t.Helper()
	for i, deadline := 0, time.Now().Add(30*time.Second); ; i++ {
		client := fmt.Sprintf("10.99.%d.%d", i/250%250, i%250)
		if status, _ := getAsFrom(t, token, m.QueryURL+"/v1/orgs/"+org+"/waves", client); status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the API token never became usable")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit posts one response through the ingest API and requires it to be
// accepted.
func submit(t *testing.T, m *Main, token string, answers map[string]int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"token": token, "answers": answers})
	resp, err := http.Post(m.IngestURL+"/v1/responses", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
}

// get fetches a path of the query API with the program's analyst token.
func get(t *testing.T, m *Main, path string) (int, string) {
	t.Helper()
	token, ok := testTokens.Load(m)
	if !ok {
		t.Fatal("no API token: call authorize first")
	}
	return getAs(t, token.(string), m.QueryURL+path)
}

// getAs fetches a URL with a bearer token ("" sends none).
func getAs(t *testing.T, token, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cellTruth is a cell computed by the test from what it sent.
type cellTruth struct {
	respondents map[int]bool
	sum, n      int
	fav, pro    int
	det         int
	dist        [11]int
}

func (c *cellTruth) add(resp, v int, dim schemas.Dimension) {
	if c.respondents == nil {
		c.respondents = map[int]bool{}
	}
	c.respondents[resp] = true
	c.sum += v
	c.n++
	c.dist[v]++
	if dim == schemas.ENPS {
		if v >= 9 {
			c.pro++
		} else if v <= 6 {
			c.det++
		}
	} else if v >= 4 {
		c.fav++
	}
}

// truthOf aggregates the sent responses by key(response) and dimension or
// question.
func truthOf(responses []sent, byQuestion bool, group func(sent) string) map[string]map[string]*cellTruth {
	out := map[string]map[string]*cellTruth{}
	for i, r := range responses {
		g := group(r)
		if out[g] == nil {
			out[g] = map[string]*cellTruth{}
		}
		for _, q := range e2eSurvey.Questions {
			v, ok := r.answers[q.ID]
			if !ok {
				continue
			}
			key := string(q.Dimension)
			if byQuestion {
				key = q.ID
			}
			if out[g][key] == nil {
				out[g][key] = &cellTruth{}
			}
			out[g][key].add(i, v, q.Dimension)
		}
	}
	return out
}

type score struct {
	Key          string   `json:"key"`
	Dimension    string   `json:"dimension"`
	Suppressed   bool     `json:"suppressed"`
	N            *int     `json:"n"`
	Mean         *float64 `json:"mean"`
	Favorable    *float64 `json:"favorable"`
	Neutral      *float64 `json:"neutral"`
	Unfavorable  *float64 `json:"unfavorable"`
	ENPS         *float64 `json:"enps"`
	VsOrg        *float64 `json:"vs_org"`
	Distribution []struct {
		Value int     `json:"value"`
		Share float64 `json:"share"`
	} `json:"distribution"`
}

type count struct {
	Suppressed bool `json:"suppressed"`
	N          *int `json:"n"`
}

type result struct {
	Waves       []string          `json:"waves"`
	Filter      map[string]string `json:"filter"`
	Threshold   int               `json:"threshold"`
	Invited     int               `json:"invited"`
	Respondents count             `json:"respondents"`
	Dimensions  []score           `json:"dimensions"`
	Drivers     []score           `json:"drivers"`
	Questions   []score           `json:"questions"`
	Overall     []score           `json:"overall"`
	Groups      []struct {
		Value       string  `json:"value"`
		Respondents count   `json:"respondents"`
		Dimensions  []score `json:"dimensions"`
	} `json:"groups"`
}

// checkScore compares a served cell with the truth: a cell of fewer than
// threshold respondents must be suppressed; a shown cell must equal the
// truth; a suppressed cell must carry no number.
func checkScore(t *testing.T, where string, s score, tr *cellTruth) {
	t.Helper()
	if s.Suppressed {
		if s.N != nil || s.Mean != nil || s.Favorable != nil || s.Neutral != nil || s.Unfavorable != nil || s.ENPS != nil || s.VsOrg != nil || s.Distribution != nil {
			t.Errorf("%s: suppressed cell carries numbers: %+v", where, s)
		}
		return
	}
	if tr == nil || len(tr.respondents) < threshold {
		t.Errorf("%s: cell of %d respondents served with numbers", where, len(tr.respondents))
		return
	}
	if s.N == nil || *s.N != len(tr.respondents) {
		t.Errorf("%s: n = %v, want %d", where, s.N, len(tr.respondents))
	}
	near := func(name string, got *float64, want float64, places int) {
		p := math.Pow(10, float64(places))
		if got == nil || math.Abs(*got-math.Round(want*p)/p) > 0.5/p+1e-9 {
			t.Errorf("%s: %s = %v, want %.*f", where, name, got, places, want)
		}
	}
	near("mean", s.Mean, float64(tr.sum)/float64(tr.n), 2)
	share := func(lo, hi int) float64 {
		k := 0
		for v := lo; v <= hi; v++ {
			k += tr.dist[v]
		}
		return float64(k) / float64(tr.n)
	}
	lo, hi := 1, 5
	if s.Dimension == string(schemas.ENPS) {
		lo, hi = 0, 10
		near("enps", s.ENPS, 100*float64(tr.pro-tr.det)/float64(tr.n), 1)
		near("promoters", s.Favorable, share(9, 10), 3)
		near("passives", s.Neutral, share(7, 8), 3)
		near("detractors", s.Unfavorable, share(0, 6), 3)
	} else {
		near("favorable", s.Favorable, float64(tr.fav)/float64(tr.n), 3)
		near("neutral", s.Neutral, share(3, 3), 3)
		near("unfavorable", s.Unfavorable, share(1, 2), 3)
	}
	if len(s.Distribution) != hi-lo+1 {
		t.Errorf("%s: distribution of %d values, want %d", where, len(s.Distribution), hi-lo+1)
	}
	for _, d := range s.Distribution {
		near(fmt.Sprintf("share of %d", d.Value), &d.Share, share(d.Value, d.Value), 3)
	}
}

// waitScores polls the scores until the closed wave is released. Every
// answer on the way is "not found" or "still open" (not projected yet),
// "results pending" or complete; no partial result is ever served.
func waitScores(t *testing.T, m *Main, query string) result {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		status, body := get(t, m, "/v1/orgs/acme/waves/w1/scores"+query)
		switch {
		case status == http.StatusOK:
			var r result
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			return r
		case status == http.StatusServiceUnavailable && strings.Contains(body, "results_pending"):
		case status == http.StatusConflict && strings.Contains(body, "wave_open"):
		case status == http.StatusNotFound && strings.Contains(body, "wave_not_found"): // not projected yet
		default:
			t.Fatalf("scores: %d %s", status, body)
		}
		if time.Now().After(deadline) {
			t.Fatal("scores never released")
		}
	}
}

func checkResult(t *testing.T, responses []sent, r, grouped result) {
	t.Helper()
	if r.Respondents.N == nil || *r.Respondents.N != len(responses) || r.Invited != len(responses) {
		t.Fatalf("respondents %+v invited %d, want %d", r.Respondents, r.Invited, len(responses))
	}
	all := func(sent) string { return "" }
	dims := truthOf(responses, false, all)[""]
	for _, s := range r.Dimensions {
		checkScore(t, "dimension "+s.Key, s, dims[s.Key])
	}
	if len(r.Dimensions) != 4 {
		t.Errorf("%d dimensions served, want 4", len(r.Dimensions))
	}
	qs := truthOf(responses, true, all)[""]
	for _, s := range r.Questions {
		checkScore(t, "question "+s.Key, s, qs[s.Key])
	}
	if len(r.Questions) != len(e2eSurvey.Questions) {
		t.Errorf("%d questions served, want %d", len(r.Questions), len(e2eSurvey.Questions))
	}

	byDept := truthOf(responses, false, func(s sent) string { return s.dept })
	hiddenSum := 0
	for _, g := range grouped.Groups {
		n := 0
		for _, r := range responses {
			if r.dept == g.Value {
				n++
			}
		}
		if g.Respondents.Suppressed {
			hiddenSum += n
			if g.Respondents.N != nil {
				t.Errorf("group %s: suppressed count carries a number", g.Value)
			}
		} else if n < threshold || g.Respondents.N == nil || *g.Respondents.N != n {
			t.Errorf("group %s: respondents %+v, truth %d", g.Value, g.Respondents, n)
		}
		for _, s := range g.Dimensions {
			checkScore(t, fmt.Sprintf("group %s dimension %s", g.Value, s.Key), s, byDept[g.Value][s.Key])
		}
	}
	if len(grouped.Groups) != len(storedDeptSizes) {
		t.Errorf("%d groups served, want %d", len(grouped.Groups), len(storedDeptSizes))
	}
	if hiddenSum > 0 && hiddenSum < threshold {
		t.Errorf("hidden groups hold %d respondents: the organisation total minus the shown groups reveals them", hiddenSum)
	}
}

// TestEndToEnd sends responses through the HTTP ingest path and checks the
// query API's aggregates against a ground truth computed here.
func TestEndToEnd(t *testing.T) {
	m := mustMain(t, nil)
	responses := runWave(t, m, rand.New(rand.NewPCG(1, 2)))
	r := waitScores(t, m, "")
	g := waitScores(t, m, "?group_by=department")
	checkResult(t, responses, r, g)
	// Legal (3) and Finance (2) are stored, and so served, as one group.
	for _, grp := range g.Groups {
		if grp.Value == "Legal" || grp.Value == "Finance" {
			t.Errorf("group %s of %d invitees was stored under its own department", grp.Value, deptSizes[grp.Value])
		}
		if grp.Value == schemas.OtherDepartments && (grp.Respondents.N == nil || *grp.Respondents.N != 5) {
			t.Errorf("other departments: %+v, want Legal's 3 and Finance's 2", grp.Respondents)
		}
	}

	// Participation: everyone invited answered; small departments hidden.
	status, body := get(t, m, "/v1/orgs/acme/waves/w1/participation?group_by=department")
	var part struct {
		Overall struct {
			Invited, Responded *int
			Rate               *float64
		} `json:"overall"`
		Groups []struct {
			Value      string `json:"value"`
			Suppressed bool   `json:"suppressed"`
			Invited    *int   `json:"invited"`
			Responded  *int   `json:"responded"`
		} `json:"groups"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &part) != nil {
		t.Fatalf("participation: %d %s", status, body)
	}
	if part.Overall.Responded == nil || *part.Overall.Responded != len(responses) || *part.Overall.Invited != len(responses) || *part.Overall.Rate != 1 {
		t.Fatalf("participation overall: %s", body)
	}
	if len(part.Groups) != len(storedDeptSizes) {
		t.Fatalf("participation of %d groups, want %d: %s", len(part.Groups), len(storedDeptSizes), body)
	}
	for _, g := range part.Groups {
		if g.Suppressed || *g.Invited != storedDeptSizes[g.Value] || *g.Responded != storedDeptSizes[g.Value] {
			t.Fatalf("participation of %s: %+v", g.Value, g)
		}
	}

	// The CSV export holds the same cells: one row each, suppressed rows
	// without numbers.
	status, body = get(t, m, "/v1/orgs/acme/waves/w1/scores?group_by=department&format=csv")
	if status != http.StatusOK {
		t.Fatalf("csv: %d %s", status, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + len(r.Dimensions) + len(r.Drivers) + len(r.Questions)
	for _, grp := range g.Groups {
		want += 1 + len(grp.Dimensions)
	}
	if len(rows) != 1+want {
		t.Fatalf("csv has %d rows, want a header and %d cells", len(rows), want)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		if row[col["suppressed"]] == "true" && strings.Join(row[col["n"]:], "") != "" {
			t.Fatalf("suppressed csv row carries numbers: %v", row)
		}
		if row[col["group"]] == "Engineering" && row[col["kind"]] == "respondents" && row[col["n"]] != "70" {
			t.Fatalf("csv Engineering respondents %q, want 70", row[col["n"]])
		}
	}
}

// TestEndToEndWithCrashes runs the same flow while the projector crashes at
// random points; the served aggregates are still exactly the truth.
func TestEndToEndWithCrashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var mu sync.Mutex
	faults := 0
	m := mustMain(t, func(projector.Stage) error {
		mu.Lock()
		defer mu.Unlock()
		if rand.IntN(6) == 0 {
			faults++
			return fmt.Errorf("crash %d", faults)
		}
		return nil
	})
	responses := runWave(t, m, rng)
	r := waitScores(t, m, "")
	g := waitScores(t, m, "?group_by=department")
	checkResult(t, responses, r, g)
	mu.Lock()
	defer mu.Unlock()
	if faults == 0 {
		t.Fatal("no crash was injected")
	}
	t.Logf("%d projector crashes", faults)
}

// TestEndToEndPartitioned runs the same flow with the event stream in 3
// partitions, the projector's workers crashing at random points: the served
// aggregates are the truth, and the wave is released by its organisation's
// partition's checkpoint.
func TestEndToEndPartitioned(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var mu sync.Mutex
	faults := 0
	m := mustMainWith(t, func(projector.Stage) error {
		mu.Lock()
		defer mu.Unlock()
		if rand.IntN(6) == 0 {
			faults++
			return fmt.Errorf("crash %d", faults)
		}
		return nil
	}, func(c *Config) { c.ProjectorPartitions = 3 })
	responses := runWave(t, m, rng)
	r := waitScores(t, m, "")
	g := waitScores(t, m, "?group_by=department")
	checkResult(t, responses, r, g)
	lags, err := m.Projector.Lags(context.Background())
	if err != nil || len(lags) != 3 {
		t.Fatalf("lags %v, %v; want 3 partitions", lags, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if faults == 0 {
		t.Fatal("no crash was injected")
	}
	t.Logf("%d projector crashes; lags %v", faults, lags)
}

// TestQueryBadInput checks the query API's errors.
func TestQueryBadInput(t *testing.T) {
	m := mustMain(t, nil)
	for name, tc := range map[string]struct {
		path   string
		status int
		code   string
	}{
		"ErrUnknownWave":  {"/v1/orgs/acme/waves/nope/scores", 404, "wave_not_found"},
		"ErrBadOrg":       {"/v1/orgs/ACME!/waves/w1/scores", 400, "invalid_id"},
		"ErrBadGroupBy":   {"/v1/orgs/acme/waves/w1/scores?group_by=email", 400, "invalid_group_by"},
		"ErrUnknownRoute": {"/v1/responses/all", 404, "not_found"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := get(t, m, tc.path)
			var p schemas.Problem
			if status != tc.status || json.Unmarshal([]byte(body), &p) != nil || p.Code != tc.code {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}
