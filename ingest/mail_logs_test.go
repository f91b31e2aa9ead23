package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// logBuffer is a slog destination the test reads back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPostmanLogsNoLinks sends invitations through a real SMTP relay (the
// go-smtp server of deploy/mailsink, used here as the relay, with its own
// logger: only the development sink may log links) that delivers one email,
// refuses another for good and first delays a third, each refusal quoting
// the recipient, the link and the bare token. Every line the postman logs,
// at every level, and every failure recorded for admins is free of links,
// tokens and addresses.
func TestPostmanLogsNoLinks(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	relay, err := mailsink.Start(t.TempDir(), "127.0.0.1:0", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	inviteEngineering(t, e) // ana and bo
	if n, err := e.admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{Department: "Sales"}); err != nil || n.Invited != 1 {
		t.Fatalf("invite cy: %d, %v", n, err)
	}

	// The links as queued, read from the outbox before the postman runs.
	links := map[string]string{}
	outbox, err := e.js.Stream(ctx, schemas.OutboxStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); ; seq++ {
		m, err := outbox.GetMsg(ctx, seq)
		if err != nil {
			if err == jetstream.ErrMsgNotFound {
				break
			}
			t.Fatal(err)
		}
		var l schemas.Letter
		if err := json.Unmarshal(m.Data, &l); err != nil {
			t.Fatal(err)
		}
		links[l.To] = l.Link
	}
	if len(links) != 3 {
		t.Fatalf("%d letters queued, want 3", len(links))
	}
	var delayed sync.Once
	relay.Reject = func(rcpt string) *smtp.SMTPError {
		link := links[rcpt]
		quote := "refused " + rcpt + " for " + link + " token " + link[strings.LastIndex(link, "/")+1:]
		switch rcpt {
		case "bo@example.com":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: quote}
		case "cy@example.com":
			var err *smtp.SMTPError
			delayed.Do(func() { err = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: quote} })
			return err
		}
		return nil
	}

	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := ingest.NewPostman(e.js, ingest.SMTPConfig{Host: relay.Host, Port: relay.Port, TLS: "none", From: "pulse@example.org",
		FromName: "Acme pulse", Rate: 100, MaxAttempts: 3, RetryBase: 20 * time.Millisecond}, log)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = p.Run(runCtx); close(done) }()
	waitMessages(t, relay, 2) // ana, and cy on the second try
	waitOutboxEmpty(t, e)
	cancel()
	<-done

	failures, err := e.admin.MailFailures(ctx, "acme")
	if err != nil || len(failures) != 1 {
		t.Fatalf("failures %+v, %v; want bo's", failures, err)
	}
	out := logs.String()
	if !strings.Contains(out, "will retry") || !strings.Contains(out, "failed permanently") {
		t.Fatalf("the postman did not log the temporary and the permanent failure:\n%s", out)
	}
	for rcpt, link := range links {
		token := link[strings.LastIndex(link, "/")+1:]
		for _, secret := range []string{link, token, rcpt} {
			if strings.Contains(out, secret) {
				t.Errorf("postman log holds %q:\n%s", secret, out)
			}
		}
		for _, secret := range []string{link, token} {
			if strings.Contains(failures[0].Reason, secret) {
				t.Errorf("recorded failure holds %q: %s", secret, failures[0].Reason)
			}
		}
	}
}
