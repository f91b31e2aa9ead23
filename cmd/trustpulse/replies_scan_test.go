package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestReplyLinksLeaveNoTrace: a reply link's capabilities reach the
// submitter and nothing else. Byte scans of the NATS store and of
// ClickHouse's files, and the process's own logs (at debug level), never
// hold a capability, while the wave is open or after its release; a
// capability's hash is sealed with its comment while the wave is open (no
// NATS file holds it in the clear) and afterwards lies only beside the
// comment: in the event stream's released CommentSubmitted and in
// ClickHouse's comments table, in no bucket (ledger, people, sign-ins) and
// not in the mail queue. The scans are shown to find the hashes where they
// are, so that finding no capability means something.
func TestReplyLinksLeaveNoTrace(t *testing.T) {
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := Open(context.Background(), testConfig(t), log)
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	analyst := authorize(t, m, schemas.RoleAnalyst)
	tokens := openReplyWave(t, m, 12, 0)

	var caps, hashes []string
	for i, tok := range tokens {
		link := submitForLink(t, m, tok, fmt.Sprintf("words of person %d", i))
		got, err := schemas.ParseReplyLink(link[strings.LastIndex(link, "/r/")+3:])
		if err != nil || len(got) != 1 {
			t.Fatalf("reply link %q: %v", link, err)
		}
		caps = append(caps, got[0])
		hashes = append(hashes, schemas.ReplyHash(got[0]))
	}
	natsDir := filepath.Join(m.Config.DataDir, "nats")
	if found := scanFiles(t, natsDir, slices.Concat(caps, hashes), nil); len(found) > 0 {
		t.Fatalf("while the wave is open, the NATS store holds capabilities or their hashes in the clear: %v", found)
	}

	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)

	// The hashes lie beside the comments, in the event stream only.
	if found := scanFiles(t, natsDir, hashes, nil); len(found) == 0 {
		t.Fatal("the scan of the NATS store does not find the released comments' hashes; it proves nothing")
	}
	if found := scanFiles(t, natsDir, hashes, []string{schemas.EventStream}); len(found) > 0 {
		t.Fatalf("reply hashes outside the event stream: %v", found)
	}
	if found := scanFiles(t, natsDir, caps, nil); len(found) > 0 {
		t.Fatalf("capabilities in the NATS store: %v", found)
	}

	chDir := testenv.ClickHouseServer(t).Dir
	for deadline := time.Now().Add(20 * time.Second); len(scanFiles(t, chDir, hashes[:1], nil)) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the scan of ClickHouse's files does not find a comment's reply hash; it proves nothing")
		}
	}
	if found := scanFiles(t, chDir, caps, nil); len(found) > 0 {
		t.Fatalf("capabilities in ClickHouse's files: %v", found)
	}
	for _, c := range slices.Concat(caps, hashes) {
		if strings.Contains(logs.String(), c) {
			t.Fatalf("the logs hold a capability or its hash")
		}
	}
}
