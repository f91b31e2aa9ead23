package ingest_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestSchedule: a weekly pulse opens its waves by itself, invites the roster
// by email, closes each on time, and rotates the drivers so that every
// driver is asked within a cycle.
func TestSchedule(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	data, err := os.ReadFile("../deploy/examples/pulse-survey.yaml")
	if err != nil {
		t.Fatal(err)
	}
	survey, err := ingest.ParseSurveyFile("pulse-survey.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	survey.SurveyID = "bank-pulse"
	if err := e.admin.PublishSurvey(ctx, "acme", survey); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.ImportRoster(ctx, "acme", mustRoster(t, mailRoster), nil); err != nil {
		t.Fatal(err)
	}
	e.admin.PublicURL = e.url
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	startPostman(t, e, sink.Host, sink.Port, 3)

	sched := schemas.ScheduleSet{ScheduleID: "weekly", SurveyID: "bank-pulse", FirstOpensAt: e.opened,
		EveryWeeks: 1, OpenDays: 2, DriversPerPulse: 4}
	if err := e.admin.SetSchedule(ctx, "acme", schemas.ScheduleSet{ScheduleID: "weekly", SurveyID: "bank-pulse", EveryWeeks: 1, OpenDays: 9}); err == nil {
		t.Fatal("a schedule open longer than its period was accepted")
	}
	if err := e.admin.SetSchedule(ctx, "acme", sched); err != nil {
		t.Fatal(err)
	}
	mixer := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
	mixer.Grace, mixer.Interval = 0, 20*time.Millisecond
	mixer.Remind, mixer.Invite = e.admin.Remind, e.admin.InviteRoster
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mixer.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	asked := map[string]bool{}
	for k := range 3 {
		e.clock.Set(e.opened.Add(time.Duration(k)*7*24*time.Hour + time.Minute))
		id := ingest.ScheduledWaveID("weekly", k)
		var w ingest.Wave
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var ok bool
			if w, ok = e.cat.Wave("acme", id); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pulse %d (%s) did not open", k, id)
			}
		}
		files := waitMessages(t, sink, 3*(k+1))
		raw, _ := os.ReadFile(files[len(files)-1])
		link := mailsink.Link(raw)
		if !strings.Contains(link, "/s/") {
			t.Fatalf("pulse %d: no link in its email", k)
		}
		_, html, _ := e.page(t, http.MethodGet, strings.TrimPrefix(link, e.url), nil)
		// 4 rotating drivers, the eNPS question and the comment question
		// (which is no fieldset but a text area).
		if len(w.QuestionIDs) != 6 || strings.Count(html, "<fieldset") != 5 || !strings.Contains(html, `name="c.comment-better"`) {
			t.Fatalf("pulse %d asks %v (%d on the page); want 4 drivers, eNPS and the comment", k, w.QuestionIDs, strings.Count(html, "<fieldset"))
		}
		for _, q := range survey.Asking(w.QuestionIDs).Questions {
			asked[q.Driver] = true
		}
		// It closes on time: two days later.
		e.clock.Set(e.opened.Add(time.Duration(k)*7*24*time.Hour + 2*24*time.Hour + time.Minute))
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if w, _ := e.cat.Wave("acme", id); w.Closed && w.Sealed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pulse %d did not close and seal on time", k)
			}
		}
	}
	for _, q := range survey.Questions {
		if !asked[q.Driver] {
			t.Errorf("driver %q was never asked in a cycle of three pulses", q.Driver)
		}
	}
}
