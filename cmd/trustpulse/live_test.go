package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestLiveParticipation: while a wave is open, how many have answered is
// shown by department — from the threshold up, with complementary
// suppression, rounded down to multiples of k so that one submission does
// not show (issue 10, finding 6: 15→16 overall and 5→6 in a department as
// one person submitted) — and once it closes the live counts are gone.
func TestLiveParticipation(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	var cohorts []schemas.Cohort
	add := func(n int, dept string) {
		for range n {
			cohorts = append(cohorts, schemas.Cohort{Department: dept, Team: dept, Location: "Berlin", TenureBand: "1-2y"})
		}
	}
	add(14, "Sales")
	add(9, "Ops")
	add(2, "Legal")
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	// 10 of Sales, 7 of Ops, 1 of Legal answer.
	answered := map[string]int{}
	for i, tok := range tokens {
		d := cohorts[i].Department
		if d == "Sales" && answered[d] == 10 || d == "Ops" && answered[d] == 7 || d == "Legal" && answered[d] == 1 {
			continue
		}
		submit(t, m, tok, map[string]int{"trust-a": 3, "trust-b": 3, "auto": 3, "moti": 3, "enps": 7})
		answered[d]++
	}
	// Ingest adds live counts every 250 ms: wait until the wave's bucket
	// holds all 18 before asking.
	liveKV, err := m.Stack.JS.KeyValue(ctx, schemas.WaveLiveBucket("acme", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sum := 0
		for _, d := range []string{"Sales", "Ops", "Legal"} {
			if e, err := liveKV.Get(ctx, schemas.LiveKey("acme", "w1", d)); err == nil {
				n, _ := strconv.Atoi(string(e.Value()))
				sum += n
			}
		}
		if sum == 18 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live bucket holds %d of 18 responses", sum)
		}
	}
	type row struct {
		Value      string `json:"value"`
		Suppressed bool   `json:"suppressed"`
		Invited    *int   `json:"invited"`
		Responded  *int   `json:"responded"`
	}
	var live struct {
		Threshold int   `json:"threshold"`
		Overall   row   `json:"overall"`
		Groups    []row `json:"groups"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, body := get(t, m, "/v1/orgs/acme/waves/w1/live")
		if status == http.StatusOK {
			live.Groups = nil // decode afresh, not into the last poll's rows
			if err := json.Unmarshal([]byte(body), &live); err != nil {
				t.Fatal(err)
			}
			if live.Overall.Invited != nil && *live.Overall.Invited == len(tokens) {
				break // every invitation projected
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("live participation: %d %s", status, body)
		}
	}
	if *live.Overall.Responded != 15 || live.Threshold != threshold {
		t.Fatalf("overall %+v (threshold %d), want 18 of 25 shown as 15", live.Overall, live.Threshold)
	}
	want := map[string][2]int{"Sales": {14, 10}, "Ops": {9, 5}}
	for _, g := range live.Groups {
		w, shown := want[g.Value]
		if !shown {
			// Legal (1) is under the threshold.
			if !g.Suppressed || g.Invited != nil || g.Responded != nil {
				t.Errorf("%s: %+v, want suppressed without numbers", g.Value, g)
			}
			continue
		}
		if g.Suppressed {
			// Decided on stepped counts, Legal's 1 is 0 and needs no
			// complement.
			t.Errorf("%s suppressed", g.Value)
			continue
		}
		if *g.Invited != w[0] || *g.Responded != w[1] {
			t.Errorf("%s: %d of %d, want %d of %d", g.Value, *g.Responded, *g.Invited, w[1], w[0])
		}
	}

	// One more Sales answer (11th, 19 in all) changes nothing shown.
	before := liveBody(t, m)
	for i, tok := range tokens {
		if cohorts[i].Department == "Sales" && i >= 10 {
			submit(t, m, tok, map[string]int{"trust-a": 3, "trust-b": 3, "auto": 3, "moti": 3, "enps": 7})
			break
		}
	}
	// Wait until the bucket itself holds the 11th, so the check can fail.
	kv, err := m.Stack.JS.KeyValue(ctx, schemas.WaveLiveBucket("acme", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if e, err := kv.Get(ctx, schemas.LiveKey("acme", "w1", "Sales")); err == nil && string(e.Value()) == "11" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 11th Sales answer never reached the live bucket")
		}
	}
	if after := liveBody(t, m); after != before {
		t.Fatalf("one submission changed live participation:\n%s\n%s", before, after)
	}

	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")
	status, body := get(t, m, "/v1/orgs/acme/waves/w1/live")
	if status != http.StatusConflict || !strings.Contains(body, "wave_closed") {
		t.Fatalf("live participation of a closed wave: %d %s", status, body)
	}
	if keys, err := kv.Keys(ctx); err == nil && len(keys) > 0 {
		t.Fatalf("live counts left after the seal: %v", keys)
	}
}

// liveBody is w1's live participation as served.
func liveBody(t *testing.T, m *Main) string {
	t.Helper()
	status, body := get(t, m, "/v1/orgs/acme/waves/w1/live")
	if status != http.StatusOK {
		t.Fatalf("live: %d %s", status, body)
	}
	return body
}
