package ingest_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

const mailRoster = "" +
	"e1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n" +
	"e2,bo@example.com,Bo Lind,Engineering,Platform,Lisbon,e1,2025-09-15\n" +
	"e3,cy@example.com,Cy Moe,Sales,EMEA,Lisbon,e1,2024-06-30\n"

// startPostman runs a postman against an SMTP server at host:port.
func startPostman(t *testing.T, e *env, host string, port, attempts int) {
	t.Helper()
	p := ingest.NewPostman(e.js, ingest.SMTPConfig{Host: host, Port: port, TLS: "none", From: "pulse@example.org",
		FromName: "Acme pulse", Rate: 100, MaxAttempts: attempts, RetryBase: 20 * time.Millisecond}, testenv.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitMessages(t *testing.T, s *mailsink.Sink, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		files, err := s.Messages()
		if err != nil {
			t.Fatal(err)
		}
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d emails arrived", len(files), n)
		}
	}
}

func inviteEngineering(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.admin.ImportRoster(ctx, "acme", mustRoster(t, mailRoster), nil); err != nil {
		t.Fatal(err)
	}
	e.admin.PublicURL = e.url
	n, err := e.admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{Department: "Engineering"})
	if err != nil || n.Invited != 2 {
		t.Fatalf("InviteRoster = %d, %v; want the 2 engineers", n, err)
	}
}

// TestInviteRosterByEmail emails each invitee of the audience a link through
// a real SMTP server; the link opens the survey.
func TestInviteRosterByEmail(t *testing.T) {
	e := mustEnv(t)
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	startPostman(t, e, sink.Host, sink.Port, 3)
	if err := e.admin.ConfigureOrg(context.Background(), "acme", schemas.OrgConfigured{SenderName: "Acme People Team"}); err != nil {
		t.Fatal(err)
	}
	inviteEngineering(t, e)

	files := waitMessages(t, sink, 2)
	to := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(raw)
		for _, want := range []string{"multipart/alternative", "text/plain", "text/html", `"Acme People Team" <pulse@example.org>`} {
			if !strings.Contains(msg, want) {
				t.Errorf("email lacks %q", want)
			}
		}
		for _, addr := range []string{"ana@example.com", "bo@example.com", "cy@example.com"} {
			if strings.Contains(msg, "To: ") && strings.Contains(msg, "<"+addr+">") {
				to[addr] = true
			}
		}
		link := mailsink.Link(raw)
		if link == "" {
			t.Fatalf("no survey link in the email:\n%s", msg)
		}
		status, html, _ := e.page(t, http.MethodGet, strings.TrimPrefix(link, e.url), nil)
		if status != http.StatusOK || !strings.Contains(html, "<form") {
			t.Fatalf("emailed link: %d", status)
		}
	}
	if !to["ana@example.com"] || !to["bo@example.com"] || to["cy@example.com"] {
		t.Fatalf("emails went to %v; want the two engineers only", to)
	}
	for _, m := range e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.InvitationIssuedType)) {
		if strings.Contains(string(m.Data()), "example.com") {
			t.Fatalf("invitation event carries an address: %s", m.Data())
		}
	}
	waitOutboxEmpty(t, e)
}

func waitOutboxEmpty(t *testing.T, e *env) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := e.js.Stream(context.Background(), schemas.OutboxStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emails still in the outbox", info.State.Msgs)
		}
	}
}

// TestPostmanRelayDown: with no SMTP server listening, emails wait and are
// retried; once the server is up they are all delivered.
func TestPostmanRelayDown(t *testing.T) {
	e := mustEnv(t)
	port, err := localch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	startPostman(t, e, "127.0.0.1", port, 12)
	inviteEngineering(t, e)
	time.Sleep(300 * time.Millisecond) // several attempts fail meanwhile
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:"+strconv.Itoa(port), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	waitMessages(t, sink, 2)
	waitOutboxEmpty(t, e)
	if f, err := e.admin.MailFailures(context.Background(), "acme"); err != nil || len(f) != 0 {
		t.Fatalf("failures recorded for a relay that came back: %v %v", f, err)
	}
}

// TestPostmanPermanentFailure: a relay that refuses an address for good
// gets no more tries; the failure is recorded for admins and the other
// email is delivered.
func TestPostmanPermanentFailure(t *testing.T) {
	e := mustEnv(t)
	sink, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.Reject = func(rcpt string) *smtp.SMTPError {
		if rcpt == "bo@example.com" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	startPostman(t, e, sink.Host, sink.Port, 3)
	inviteEngineering(t, e)
	waitMessages(t, sink, 1)
	waitOutboxEmpty(t, e)
	failures, err := e.admin.MailFailures(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || failures[0].To != "bo@example.com" || failures[0].WaveID != "w1" || !strings.Contains(failures[0].Reason, "550") {
		t.Fatalf("failures %+v; want bo's 550", failures)
	}
	if files, _ := sink.Messages(); len(files) != 1 {
		t.Fatalf("%d emails delivered, want 1", len(files))
	}
}
