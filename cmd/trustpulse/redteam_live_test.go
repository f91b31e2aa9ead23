package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Attack R4: docs/anonymity.md §5 says live counts are rounded down to
// multiples of k, "so one submission changes a shown count only when it
// crosses a multiple of k". But whether a department is shown at all
// depends on the exact counts (rule 2: the rest of the wave must hold 0 or
// at least k), so one submission that crosses no multiple of k anywhere
// turns a suppressed department into a number, and tells the watcher the
// exact count of the rest of the wave at that moment.
func TestRedTeamLiveOneSubmissionFlips(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	var cohorts []schemas.Cohort
	for _, d := range []struct {
		name string
		n    int
	}{{"A", 7}, {"B", 2}, {"C", 3}} {
		for range d.n {
			cohorts = append(cohorts, schemas.Cohort{Department: d.name, Team: d.name, Location: "Berlin", TenureBand: "1-2y"})
		}
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := m.Stack.JS.KeyValue(ctx, schemas.WaveLiveBucket("acme", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	answer := map[string]int{"trust-a": 3, "trust-b": 3, "auto": 3, "moti": 3, "enps": 7}
	// A: 7, B: 2, C: 2 of 3 — 11 in all, shown as 10.
	last := ""
	for i := len(tokens) - 1; i >= 0 && last == ""; i-- {
		if cohorts[i].Department == "C" {
			last = tokens[i]
		}
	}
	for _, tok := range tokens {
		if tok != last {
			submit(t, m, tok, answer)
		}
	}
	waitLive(t, ctx, kv, map[string]int{"A": 7, "B": 2, "C": 2})
	before := waitLiveInvited(t, m, len(tokens))
	submit(t, m, last, answer) // C: 2 → 3, total 11 → 12: no multiple of 5 crossed
	waitLive(t, ctx, kv, map[string]int{"C": 3})
	after := liveBody(t, m)
	t.Logf("before: %s", before)
	t.Logf("after:  %s", after)
	if before != after {
		t.Errorf("FALSE CLAIM (§5, §7): one submission in C (2→3; total 11→12; no count crosses a multiple of k=5) changed live participation")
	}
}

func waitLive(t *testing.T, ctx context.Context, kv jetstream.KeyValue, want map[string]int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok := true
		for d, n := range want {
			e, err := kv.Get(ctx, schemas.LiveKey("acme", "w1", d))
			if err != nil || string(e.Value()) != strconv.Itoa(n) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("live bucket never reached %v", want)
		}
	}
}

func waitLiveInvited(t *testing.T, m *Main, invited int) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, body := get(t, m, "/v1/orgs/acme/waves/w1/live")
		if status == 200 && strings.Contains(body, `"overall":{"invited":`+strconv.Itoa(invited)) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("live participation never showed %d invited: %s", invited, body)
		}
	}
}
