package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/schemas"
)

// managerRoster is a small reporting tree: a CEO; a head of engineering
// with five team leads, each leading five engineers; a head of sales with
// one lead of five; and an advisor who reports to nobody. The leads of
// engineering share a team, so their own cohort (line CEO > head) holds
// five people and is stored whole; the CEO, the heads, the sales lead and
// the advisor are alone with their lines, so generalisation cuts theirs
// until the five of them share the fully generalised cohort (with one
// fewer, it would pull in a whole group of five to reach k, and a lead's
// engineers would lose their line).
func managerRoster() (rows string, managerOf map[string]string) {
	var b strings.Builder
	managerOf = map[string]string{}
	add := func(id, dept, team, manager string) {
		fmt.Fprintf(&b, "%s,%s@acme.example,%s,%s,%s,Berlin,%s,2023-03-01\n", id, strings.ToLower(id), id, dept, team, manager)
		managerOf[id] = manager
	}
	add("ceo", "Eng", "eng-leads", "")
	add("advisor", "Eng", "eng-leads", "")
	add("head-eng", "Eng", "eng-leads", "ceo")
	add("head-sales", "Sales", "sales-1", "ceo")
	for l := 1; l <= 5; l++ {
		lead := fmt.Sprintf("lead-%d", l)
		add(lead, "Eng", "eng-leads", "head-eng")
		for e := 1; e <= 5; e++ {
			add(fmt.Sprintf("eng-%d-%d", l, e), "Eng", fmt.Sprintf("eng-%d", l), lead)
		}
	}
	add("lead-sales", "Sales", "sales-1", "head-sales")
	for e := 1; e <= 5; e++ {
		add(fmt.Sprintf("sales-%d", e), "Sales", "sales-1", "lead-sales")
	}
	return b.String(), managerOf
}

// TestManagerGroups checks the manager filters and groups against the
// truth computed from the roster alone: direct reports (manager=), all
// reports at any depth (reports_to=), a lead's own answer counting for
// their head's groups and never for their own, and group_by=manager
// splitting a subtree into its direct-report groups. The roster is
// imported and invited the way an organisation does it (CSV, emails), so
// the reporting lines come from the roster's tree through generalisation.
func TestManagerGroups(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	rows, managerOf := managerRoster()
	links := inviteByEmail(t, m, rows, len(managerOf))

	// Each person's survey link, by their employee id (the mail's To).
	linkOf := map[string]string{}
	files, err := m.MailSink.Messages()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		to, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(to.Address, "@acme.example")
		linkOf[id] = mailsink.Link(raw)
	}
	if len(linkOf) != len(managerOf) || len(links) != len(managerOf) {
		t.Fatalf("%d links for %d people", len(linkOf), len(managerOf))
	}

	// Everyone answers; trust-a differs from person to person, the rest is
	// constant, so every mean below pins the set it was computed on.
	ids := sortedKeys(managerOf)
	trustA := map[string]int{}
	for i, id := range ids {
		trustA[id] = 1 + (i*7)%5
		link := linkOf[id]
		submit(t, m, link[strings.LastIndex(link, "/")+1:], map[string]int{"trust-a": trustA[id], "trust-b": 3, "auto": 2, "moti": 4, "enps": 7})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")

	personOf := personIDs(t, m)
	below := func(root string, direct bool) []string {
		var out []string
		for _, id := range ids {
			for up := managerOf[id]; up != ""; up = managerOf[up] {
				if up == root {
					out = append(out, id)
					break
				}
				if direct {
					break
				}
			}
		}
		return out
	}
	mean := func(people []string) float64 {
		sum := 0
		for _, id := range people {
			sum += trustA[id]
		}
		return float64(sum) / float64(len(people))
	}
	question := func(r result, key string) score {
		for _, s := range r.Questions {
			if s.Key == key {
				return s
			}
		}
		t.Fatalf("no question %s in %+v", key, r.Questions)
		return score{}
	}
	check := func(query string, people []string) result {
		t.Helper()
		r := waitScores(t, m, query)
		s := question(r, "trust-a")
		if r.Respondents.N == nil || *r.Respondents.N != len(people) || s.Mean == nil || math.Abs(*s.Mean-mean(people)) > 0.006 {
			t.Errorf("%s: respondents %v, trust-a %+v; want %d respondents with mean %.3f (%v)", query, r.Respondents.N, s, len(people), mean(people), people)
		}
		return r
	}

	// Direct reports: a lead's five engineers, without the lead.
	lead1 := below("lead-1", true)
	if len(lead1) != 5 || slices.Contains(lead1, "lead-1") {
		t.Fatalf("roster: lead-1's reports %v", lead1)
	}
	check("?manager="+personOf["lead-1"], lead1)
	check("?manager="+personOf["lead-sales"], below("lead-sales", true))
	// The head's direct reports are the five leads: their own answers
	// count here, in their manager's group.
	check("?manager="+personOf["head-eng"], below("head-eng", true))
	// All reports of the head: the leads and their engineers, 30 people.
	all := below("head-eng", false)
	if len(all) != 30 {
		t.Fatalf("roster: head-eng has %d reports", len(all))
	}
	grouped := check("?reports_to="+personOf["head-eng"]+"&group_by=manager", all)

	// Grouped by manager, the subtree splits into the head's direct
	// reports and each lead's: six groups of five, each its own truth.
	wantGroups := map[string][]string{personOf["head-eng"]: below("head-eng", true)}
	for l := 1; l <= 5; l++ {
		lead := fmt.Sprintf("lead-%d", l)
		wantGroups[personOf[lead]] = below(lead, true)
	}
	if len(grouped.Groups) != len(wantGroups) {
		t.Fatalf("group_by=manager in head-eng's subtree: %d groups, want %d: %+v", len(grouped.Groups), len(wantGroups), grouped.Groups)
	}
	for _, g := range grouped.Groups {
		people, ok := wantGroups[g.Value]
		if !ok {
			t.Errorf("group %q is no manager of the subtree", g.Value)
			continue
		}
		if g.Respondents.N == nil || *g.Respondents.N != len(people) {
			t.Errorf("group %s: respondents %+v, want %d", g.Value, g.Respondents, len(people))
			continue
		}
		// trust is trust-a and trust-b (3 for everyone) averaged.
		want := (mean(people) + 3) / 2
		for _, d := range g.Dimensions {
			if d.Key == string(schemas.Trust) && (d.Mean == nil || math.Abs(*d.Mean-want) > 0.006) {
				t.Errorf("group %s: trust %+v, want %.3f", g.Value, d, want)
			}
		}
	}

	// Nothing about someone with too few people below them is served:
	// the CEO's direct reports are the two heads.
	r := waitScores(t, m, "?manager="+personOf["ceo"])
	if r.Respondents.N != nil {
		t.Errorf("the CEO's two direct reports served: %+v", r.Respondents)
	}
	// A lead has nobody in their own direct-reports group but their team,
	// so a lead's answer is never in their own group.
	for _, s := range []string{"manager=", "reports_to="} {
		r := waitScores(t, m, "?"+s+personOf["lead-2"])
		if r.Respondents.N == nil || *r.Respondents.N != 5 {
			t.Errorf("%slead-2: %+v, want its 5 engineers", s, r.Respondents)
		}
	}
}

// personIDs reads the person id of every employee id from the people
// bucket, as an operator (or the managers endpoint) knows them.
func personIDs(t *testing.T, m *Main) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := m.Stack.JS.KeyValue(ctx, schemas.PeopleBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, key := range keys {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var p schemas.Person
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			t.Fatal(err)
		}
		out[p.EmployeeID] = p.PersonID
	}
	return out
}
