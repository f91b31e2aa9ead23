package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestRedReplyLookupTellsLinkSize (red team, RED3): a ClickHouse server
// logging at trace should not learn which link was opened. HeldComments
// reads the survey once per comment of the link (Store.Questions inside
// the loop), so the server log of one visit tells how many comments the
// opened link holds. This fails while a visit's queries depend on the
// link's size.
func TestRedReplyLookupTellsLinkSize(t *testing.T) {
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
		link := submitForLink(t, m, tok, fmt.Sprintf("sized words %d", i))
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
	logFile := filepath.Join(srv.Dir, "log", "clickhouse-server.log")
	visit := func(held []string) []byte {
		before, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(m.QueryURL + "/r/" + strings.Join(held, "."))
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "sized words") {
			t.Fatalf("the holder's page: %d %s", resp.StatusCode, page)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			all, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			after := all[min(len(before), len(all)):]
			if bytes.Contains(after, []byte("comment_thread")) {
				return after
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server log holds no query of the visit")
			}
		}
	}
	visit(caps[0:1]) // loads the index
	one := bytes.Count(visit(caps[1:2]), []byte("FROM surveys"))
	three := bytes.Count(visit(caps[3:6]), []byte("FROM surveys"))
	if one != three {
		t.Errorf("ClickHouse's server log tells a link's size: a visit to a link of 1 comment sends %d survey queries, of 3 comments %d", one, three)
	}
}
