package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// env is an ingest service on a real embedded NATS server with an open wave
// "w1" of survey "pulse" for org "acme".
type env struct {
	srv    *natsrv.Server
	js     jetstream.JetStream
	ledger *ingest.Ledger
	cat    *ingest.Catalog
	admin  *ingest.Admin
	server *ingest.Server
	url    string
	clock  *clock
	opened time.Time
}

var testSurvey = schemas.SurveyPublished{SurveyID: "pulse", Title: "Pulse", Questions: []schemas.Question{
	{ID: "trust-1", Text: "I trust my manager.", Dimension: schemas.Trust},
	{ID: "auto-1", Text: "I decide how I reach my goals.", Dimension: schemas.Empowerment},
	{ID: "moti-1", Text: "My work motivates me.", Dimension: schemas.Motivation, Optional: true},
	{ID: "enps", Text: "Recommend us?", Dimension: schemas.ENPS},
	{ID: "better", Text: "What would make work better?", Dimension: schemas.Comment},
	{ID: "worse", Text: "What gets in the way?", Dimension: schemas.Comment},
}}

func validAnswers() map[string]int {
	return map[string]int{"trust-1": 4, "auto-1": 5, "moti-1": 3, "enps": 9}
}

var testCohort = schemas.Cohort{Department: "Engineering", Team: "Platform", Location: "Berlin", TenureBand: "1-2y"}

func mustEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	srv, _, js := testenv.NATS(t)
	log := testenv.Logger(t)
	e := &env{srv: srv, js: js, clock: &clock{t: time.Now().UTC()}}
	e.opened = e.clock.Now()
	var err error
	if e.ledger, err = ingest.OpenLedger(ctx, js); err != nil {
		t.Fatal(err)
	}
	if e.cat, err = ingest.StartCatalog(ctx, js, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cat.Stop)
	e.admin = ingest.NewAdmin(js, e.ledger, e.cat, e.clock.Now)
	// These tests drive the mechanics with waves of one to three people;
	// generalise_test.go runs the generalisation of cohorts.
	e.admin.KeepCohortsForTest(true)
	e.server = ingest.NewServer(js, e.ledger, e.cat, 5, log, e.clock.Now)
	e.server.ReplyBase = "https://results.acme.example"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.server.App().Listener(ln) }()
	t.Cleanup(func() { _ = e.server.App().Shutdown() })
	e.url = "http://" + ln.Addr().String()
	if err := e.admin.PublishSurvey(ctx, "acme", testSurvey); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse",
		OpensAt: e.opened.Add(-time.Minute), ClosesAt: e.opened.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return e
}

// invite issues n invitations to w1.
func (e *env) invite(t *testing.T, n int) []string {
	t.Helper()
	cohorts := make([]schemas.Cohort, n)
	for i := range cohorts {
		cohorts[i] = testCohort
	}
	toks, err := e.admin.IssueInvitations(context.Background(), "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

func submitBody(token string, answers map[string]int) []byte {
	b, _ := json.Marshal(map[string]any{"token": token, "answers": answers})
	return b
}

// post sends a request to the ingest app and returns status and body.
func (e *env) post(t *testing.T, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/responses", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// responses returns the responses ingest has stored, raw: those held in the
// pending stream and those the mixer has published to the event stream.
func (e *env) responses(t *testing.T) [][]byte {
	t.Helper()
	return e.stored(t, schemas.ResponseSubmittedType)
}

// stored returns the events of type typ ingest has stored, raw, held or
// published.
func (e *env) stored(t *testing.T, typ schemas.EventType) [][]byte {
	t.Helper()
	var out [][]byte
	var held [][]byte
	if _, err := e.js.Stream(context.Background(), schemas.HeldStream("acme", "w1")); err == nil {
		held = e.read(t, schemas.HeldStream("acme", "w1"), schemas.HeldSubject("acme", "w1"))
	}
	for _, data := range held {
		env, err := schemas.DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type == typ {
			out = append(out, data)
		}
	}
	return append(out, e.read(t, schemas.EventStream, schemas.SubjectFilter(typ))...)
}

// read returns the data of a stream's messages on subject, in stream order.
func (e *env) read(t *testing.T, streamName, subject string) [][]byte {
	t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for range info.NumPending {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Data())
	}
	return out
}

// postAtOnce posts n submissions of one link all at once and counts their
// statuses.
func (e *env) postAtOnce(t *testing.T, tok string, n int) map[int]int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], _ = e.post(t, "application/json", submitBody(tok, validAnswers()))
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	return count
}

// slotLinks issues an invitation to w1 and a reminder's link for the same
// response slot: two links of which one response may be recorded.
func (e *env) slotLinks(t *testing.T) (first, reminder string) {
	t.Helper()
	ctx := context.Background()
	inv := schemas.Invitation{Org: "acme", WaveID: "w1", Cohort: testCohort, ExpiresAt: e.opened.Add(24 * time.Hour)}
	first, slot, err := e.ledger.Issue(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	inv.Slot = slot
	if reminder, err = e.ledger.IssueForSlot(ctx, inv); err != nil {
		t.Fatal(err)
	}
	return first, reminder
}

// openPage opens a link's survey page, as an employee following the emailed
// link does, and requires the form.
func (e *env) openPage(t *testing.T, tok string) {
	t.Helper()
	if status, _, _ := e.page(t, http.MethodGet, "/s/"+tok, nil); status != http.StatusOK {
		t.Fatalf("GET /s/<link>: %d, want the survey (200)", status)
	}
}
