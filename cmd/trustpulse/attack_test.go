package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestAttackSlicing plays two colluding analysts against random
// organisations with planted individuals: people alone in their team, their
// location or their tenure band. Through the public API only, they ask for
// every slicing in a random order. The test then takes every respondent
// count that was served — and every count the served ones give away by
// subtraction (the total minus the shown groups) — and checks, against the
// true response sets, that no two differ by 1 to k-1 people: no difference
// of served numbers isolates fewer than k people, so no planted answer can be
// recovered.
func TestAttackSlicing(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("org", seed), func(t *testing.T) {
			attack(t, rand.New(rand.NewPCG(seed, 99)))
		})
	}
}

func attack(t *testing.T, rng *rand.Rand) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	attrs := []string{"department", "team", "location", "tenure_band"}
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	var people []map[string]string
	for range 40 + rng.IntN(30) {
		dept := pick("Eng", "Sales", "Ops")
		people = append(people, map[string]string{
			"department": dept, "team": dept + "-" + pick("a", "b"), "location": pick("Berlin", "Lisbon"), "tenure_band": pick("<1y", "1-2y", "2-5y"),
		})
	}
	// A department that is one team and one more person: department minus
	// team is that person.
	for range 20 {
		people = append(people, map[string]string{"department": "Legal", "team": "Legal-core", "location": pick("Berlin", "Lisbon"), "tenure_band": pick("<1y", "1-2y")})
	}
	// Planted individuals, alone in one attribute each.
	people = append(people,
		map[string]string{"department": "Legal", "team": "Legal-solo", "location": "Berlin", "tenure_band": "<1y"},
		map[string]string{"department": "Eng", "team": "Eng-solo", "location": "Berlin", "tenure_band": "1-2y"},
		map[string]string{"department": "Sales", "team": "Sales-a", "location": "Remote", "tenure_band": "2-5y"},
		map[string]string{"department": "Ops", "team": "Ops-b", "location": "Lisbon", "tenure_band": "10y+"})
	cohorts := make([]schemas.Cohort, len(people))
	for i, p := range people {
		cohorts[i] = schemas.Cohort{Department: p["department"], Team: p["team"], Location: p["location"], TenureBand: p["tenure_band"]}
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		submit(t, m, tok, map[string]int{"trust-a": 1 + rng.IntN(5), "trust-b": 3, "auto": 3, "moti": 3, "enps": 5})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")
	second := authorize(t, m, schemas.RoleAnalyst) // the colluding analyst

	// Served sets: respondent indices behind every shown respondents count.
	type set map[int]bool
	members := func(attr, value string) set {
		s := set{}
		for i, p := range people {
			if attr == "" || p[attr] == value {
				s[i] = true
			}
		}
		return s
	}
	var served []set
	var names []string
	rng.Shuffle(len(attrs), func(i, j int) { attrs[i], attrs[j] = attrs[j], attrs[i] })
	for i, attr := range append([]string{""}, attrs...) {
		url := m.QueryURL + "/v1/orgs/acme/waves/w1/scores?group_by=" + attr
		var status int
		var body string
		if i%2 == 0 {
			status, body = get(t, m, "/v1/orgs/acme/waves/w1/scores?group_by="+attr)
		} else {
			status, body = getAs(t, second, url)
		}
		var r result
		if status != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("group_by=%s: %d %s", attr, status, body)
		}
		if r.Respondents.N != nil {
			served, names = append(served, members("", "")), append(names, "everyone")
		}
		hidden := set{}
		for _, g := range r.Groups {
			if g.Respondents.N != nil {
				s := members(attr, g.Value)
				if len(s) != *g.Respondents.N {
					t.Fatalf("%s=%s served %d, truth %d", attr, g.Value, *g.Respondents.N, len(s))
				}
				served, names = append(served, s), append(names, attr+"="+g.Value)
			} else {
				for i := range members(attr, g.Value) {
					hidden[i] = true
				}
			}
		}
		if len(hidden) > 0 && r.Respondents.N != nil {
			// Everyone minus the shown groups.
			served, names = append(served, hidden), append(names, "hidden "+attr+" groups")
		}
	}
	k := threshold
	for i := range served {
		if n := len(served[i]); n > 0 && n < k {
			t.Errorf("%s: %d people served or derivable", names[i], n)
		}
		for j := i + 1; j < len(served); j++ {
			d := 0
			for x := range served[i] {
				if !served[j][x] {
					d++
				}
			}
			for x := range served[j] {
				if !served[i][x] {
					d++
				}
			}
			if d > 0 && d < k {
				t.Errorf("%s and %s differ by %d people: their difference isolates them", names[i], names[j], d)
			}
		}
	}
	if len(served) < 4 {
		t.Fatalf("only %d sets served; the attack learned nothing to check", len(served))
	}
}
