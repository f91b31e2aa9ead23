package ingest_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// linksTo returns the survey links emailed to addr, oldest first.
func linksTo(t *testing.T, s *mailsink.Sink, addr string) []string {
	t.Helper()
	files, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		if strings.Contains(string(raw), "<"+addr+">") {
			out = append(out, mailsink.Link(raw))
		}
	}
	return out
}

// TestRemind: only invitees who have not answered get a reminder, with a new
// link that shares their response slot; once either link has answered, the
// other says "already answered". Sealing the wave forgets who was invited.
func TestRemind(t *testing.T) {
	e := mustEnv(t)
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	startPostman(t, e, sink.Host, sink.Port, 3)
	inviteEngineering(t, e) // ana and bo
	waitMessages(t, sink, 2)
	ana := linksTo(t, sink, "ana@example.com")[0]
	if status, body := e.post(t, "application/json", submitBody(ana[strings.LastIndex(ana, "/")+1:], validAnswers())); status != http.StatusAccepted {
		t.Fatalf("ana answers: %d %s", status, body)
	}

	ctx := context.Background()
	n, err := e.admin.Remind(ctx, "acme", "w1")
	if err != nil || n != 1 {
		t.Fatalf("Remind = %d, %v; want bo only", n, err)
	}
	waitMessages(t, sink, 3)
	if got := len(linksTo(t, sink, "ana@example.com")); got != 1 {
		t.Fatalf("ana, who answered, got %d emails", got)
	}
	bo := linksTo(t, sink, "bo@example.com")
	if len(bo) != 2 || bo[0] == bo[1] {
		t.Fatalf("bo's links %v; want the invitation and a different reminder link", bo)
	}
	// Bo answers with the reminder; the first link is then spent too.
	if status, _ := e.post(t, "application/json", submitBody(bo[1][strings.LastIndex(bo[1], "/")+1:], validAnswers())); status != http.StatusAccepted {
		t.Fatalf("bo answers with the reminder link: %d", status)
	}
	if status, _ := e.post(t, "application/json", submitBody(bo[0][strings.LastIndex(bo[0], "/")+1:], validAnswers())); status != http.StatusConflict {
		t.Fatalf("bo's first link after answering: %d, want 409", status)
	}
	if n, err := e.admin.Remind(ctx, "acme", "w1"); err != nil || n != 0 {
		t.Fatalf("second Remind = %d, %v; everyone answered", n, err)
	}

	if got := inviteeKeys(t, e); len(got) != 2 {
		t.Fatalf("invitee entries before the seal: %v; want ana's and bo's", got)
	}
	if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if got := inviteeKeys(t, e); len(got) != 0 {
		t.Fatalf("invitee entries %v survive the seal", got)
	}
}

func inviteeKeys(t *testing.T, e *env) []string {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), schemas.WaveInviteeBucket("acme", "w1"))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil // deleted at the seal
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, "e.") {
			out = append(out, k)
		}
	}
	return out
}

// TestRemindOnSchedule: the mixer sends a wave's reminders on its reminder
// day, once.
func TestRemindOnSchedule(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	if err := e.admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w2", SurveyID: "pulse",
		OpensAt: e.opened, ClosesAt: e.opened.Add(7 * 24 * time.Hour), ReminderDays: []int{3}}); err != nil {
		t.Fatal(err)
	}
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	startPostman(t, e, sink.Host, sink.Port, 3)
	if _, err := e.admin.ImportRoster(ctx, "acme", mustRoster(t, mailRoster), nil); err != nil {
		t.Fatal(err)
	}
	e.admin.PublicURL = e.url
	if n, err := e.admin.InviteRoster(ctx, "acme", "w2", ingest.Audience{}); err != nil || n.Invited != 3 {
		t.Fatalf("invite: %d %v", n, err)
	}
	waitMessages(t, sink, 3)

	mixer := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
	mixer.Interval, mixer.Remind = 20*time.Millisecond, e.admin.Remind
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mixer.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond) // day 0: nothing due
	if files, _ := sink.Messages(); len(files) != 3 {
		t.Fatalf("%d emails before the reminder day, want 3", len(files))
	}
	e.clock.Set(e.opened.Add(3*24*time.Hour + time.Minute))
	waitMessages(t, sink, 6)
	time.Sleep(200 * time.Millisecond) // more rounds: no second reminder
	if files, _ := sink.Messages(); len(files) != 6 {
		t.Fatalf("%d emails after the reminder day, want 6 (3 invitations, 3 reminders once)", len(files))
	}
}
