package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/localch"
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

// TestReplyLookupNamesNothing: a ClickHouse server logging at trace level
// (a stock install's default) writes every query's text to its server log.
// Opening a reply link of two capabilities, and answering back through it,
// must leave in that log neither the link's hashes nor its comments' ids
// (which would say that the two comments share a writer). The log is
// shown to hold the holder's queries (the organisation's threads read
// whole), so that finding nothing means something.
func TestReplyLookupNamesNothing(t *testing.T) {
	srv, err := localch.Start(context.Background(), t.TempDir(), localch.Options{LogLevel: "trace"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	m := mustMainWith(t, nil, func(c *Config) { c.ClickHouseAddr, c.ClickHouseDatabase = srv.Addr, "traced" })
	analyst := authorize(t, m, schemas.RoleAnalyst)
	tokens := openReplyWave(t, m, 12, 0)
	var caps []string
	for i, tok := range tokens {
		link := submitForLink(t, m, tok, fmt.Sprintf("traced words %d", i))
		got, err := schemas.ParseReplyLink(link[strings.LastIndex(link, "/r/")+3:])
		if err != nil || len(got) != 1 {
			t.Fatalf("reply link %q: %v", link, err)
		}
		caps = append(caps, got[0])
	}
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)

	held := caps[3:5] // one writer's two comments, as one link
	hashes := []string{schemas.ReplyHash(held[0]), schemas.ReplyHash(held[1])}
	var ids []string
	rows, err := m.Stack.CH.Query(context.Background(), "SELECT comment_id FROM comments WHERE reply_hash IN (?, ?)", hashes[0], hashes[1])
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != 2 {
		t.Fatalf("the link's comments: %v", ids)
	}

	logFile := filepath.Join(srv.Dir, "log", "clickhouse-server.log")
	before, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	link := m.QueryURL + "/r/" + strings.Join(held, ".")
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "traced words 3") || !strings.Contains(string(page), "traced words 4") {
		t.Fatalf("the holder's page: %d %s", resp.StatusCode, page)
	}
	// The logger may write a moment after the query answers.
	var after []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		all, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		after = all[min(len(before), len(all)):]
		if bytes.Contains(after, []byte("comment_thread")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server log at trace holds no query of the holder's visit (%d bytes after it); the scan proves nothing", len(after))
		}
	}
	for _, mk := range slices.Concat(hashes, ids, held) {
		if bytes.Contains(after, []byte(mk)) {
			t.Errorf("ClickHouse's server log holds %q after the holder opened their link", mk)
		}
	}
}
