package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trustpulse/trustpulse/schemas"
)

// natsWatch sees, from a connection of its own, the JetStream requests
// the ingest process sends while it records: key-value and stream reads
// (direct gets and message gets) and key-value writes. Core NATS delivers
// every such request to this subscriber too, so what it sees is the
// server's view of the traffic, not ingest's own account of it.
type natsWatch struct {
	nc   *nats.Conn
	msgs chan *nats.Msg
}

func watchNATS(t *testing.T, e *env) *natsWatch {
	t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &natsWatch{nc: nc, msgs: make(chan *nats.Msg, 1<<16)}
	for _, subject := range []string{"$JS.API.DIRECT.GET.>", "$JS.API.STREAM.MSG.GET.>", "$KV.>"} {
		// A channel subscription: the connection's reader puts each message
		// in the channel before it reads the next, so after a round trip
		// (Flush) every message sent before it is in the channel.
		if _, err := nc.ChanSubscribe(subject, w.msgs); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// during returns the reads and key-value writes sent while do ran.
func (w *natsWatch) during(t *testing.T, do func()) (reads, writes []string) {
	t.Helper()
	w.drain(t)
	do()
	return w.drain(t)
}

// drain returns what the watch saw since the last drain. The server
// forwarded ingest's requests before it answered them, so a round trip of
// this connection's own after the answer brings them all.
func (w *natsWatch) drain(t *testing.T) (reads, writes []string) {
	t.Helper()
	if err := w.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-w.msgs:
			if strings.HasPrefix(m.Subject, "$KV.") {
				writes = append(writes, m.Subject)
			} else {
				reads = append(reads, m.Subject)
			}
		default:
			return reads, writes
		}
	}
}

// TestLinkCacheSubmitAfterPage: after the survey page was opened, posting
// the answers reads nothing from the ledger (the NATS server sees no get)
// and writes one key, the slot's claim; the response is stored once and the
// link is then spent, and forgotten by the cache. Without the page first,
// the post reads the ledger as it always did.
func TestLinkCacheSubmitAfterPage(t *testing.T) {
	e := mustEnv(t)
	w := watchNATS(t, e)
	toks := e.invite(t, 2)

	reads, _ := w.during(t, func() {
		if status, _, _ := e.page(t, http.MethodGet, "/s/"+toks[0], nil); status != http.StatusOK {
			t.Fatalf("GET survey: %d", status)
		}
	})
	if len(reads) == 0 {
		t.Fatal("the page read nothing from the ledger: the watch sees no reads, so it proves nothing")
	}
	if got := e.ledger.KeptLinksForTest(); got != 1 {
		t.Fatalf("%d links kept after the page, want 1", got)
	}
	reads, writes := w.during(t, func() {
		if status, body := e.post(t, "application/json", submitBody(toks[0], validAnswers())); status != http.StatusAccepted {
			t.Fatalf("submit after the page: %d %s", status, body)
		}
	})
	if len(reads) != 0 {
		t.Errorf("the post after the page read %v, want no read", reads)
	}
	if len(writes) != 1 || !strings.Contains(writes[0], "slot") {
		t.Errorf("the post after the page wrote %v, want the slot's claim alone", writes)
	}
	if got := e.ledger.KeptLinksForTest(); got != 0 {
		t.Errorf("%d links kept after the response, want 0: a used link is forgotten", got)
	}
	if status, body := e.post(t, "application/json", submitBody(toks[0], validAnswers())); status != http.StatusConflict {
		t.Fatalf("second submit: %d %s", status, body)
	}

	reads, _ = w.during(t, func() {
		if status, body := e.post(t, "application/json", submitBody(toks[1], validAnswers())); status != http.StatusAccepted {
			t.Fatalf("submit without the page: %d %s", status, body)
		}
	})
	if len(reads) < 3 {
		t.Errorf("the post without the page read %v, want the ledger's three reads", reads)
	}
	if got := len(e.responses(t)); got != 2 {
		t.Fatalf("%d responses stored, want 2", got)
	}
}

// TestLinkCacheStaleSlot: two links of one slot (the invitation and its
// reminder), both pages opened, so both kept with the slot's revision of
// then. After one records, the other is refused (409) though its kept
// revision knew nothing of it; after a failed publish released the slot,
// a kept link with a revision from before the claim and release records.
func TestLinkCacheStaleSlot(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	pair := func() (string, string) {
		first, reminder := e.slotLinks(t)
		for _, tok := range []string{first, reminder} {
			e.openPage(t, tok)
		}
		return first, reminder
	}

	first, reminder := pair()
	if status, body := e.post(t, "application/json", submitBody(first, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("first link: %d %s", status, body)
	}
	if status, body := e.post(t, "application/json", submitBody(reminder, validAnswers())); status != http.StatusConflict {
		t.Fatalf("the reminder of a used slot, kept from before: %d %s, want 409", status, body)
	}
	if got := len(e.responses(t)); got != 1 {
		t.Fatalf("%d responses stored, want 1", got)
	}

	first, reminder = pair()
	if err := e.js.DeleteStream(ctx, schemas.HeldStream("acme", "w1")); err != nil {
		t.Fatal(err)
	}
	if status, body := e.post(t, "application/json", submitBody(first, validAnswers())); status != http.StatusServiceUnavailable {
		t.Fatalf("publish to a missing stream: %d %s", status, body)
	}
	if _, err := e.js.CreateOrUpdateStream(ctx, schemas.HeldStreamConfig("acme", "w1", 1)); err != nil {
		t.Fatal(err)
	}
	if status, body := e.post(t, "application/json", submitBody(reminder, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("the reminder of a released slot, kept from before the claim: %d %s, want 202", status, body)
	}
	if status, body := e.post(t, "application/json", submitBody(first, validAnswers())); status != http.StatusConflict {
		t.Fatalf("the first link after its slot recorded: %d %s, want 409", status, body)
	}
	if got := len(e.responses(t)); got != 1 {
		t.Fatalf("%d responses stored after the recreated stream, want 1", got)
	}
}

// TestLinkCacheForgetsClosedWave: the links of a wave that closed are
// dropped from memory by the sweep, and a kept link of a closed wave
// records nothing (410).
func TestLinkCacheForgetsClosedWave(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	e.openPage(t, tok)
	if got := e.ledger.KeptLinksForTest(); got != 1 {
		t.Fatalf("%d links kept after the page, want 1", got)
	}
	if err := e.admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.ledger.KeptLinksForTest() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d links still kept 10 s after the wave closed", e.ledger.KeptLinksForTest())
		}
	}
	if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusGone {
		t.Fatalf("submit to a closed wave: %d %s, want 410", status, body)
	}
	if got := len(e.responses(t)); got != 0 {
		t.Fatalf("%d responses stored, want 0", got)
	}
}
