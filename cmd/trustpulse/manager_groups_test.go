package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
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

// managerOrg is managerRoster imported, invited by email, answered by
// everyone and released.
type managerOrg struct {
	m         *Main
	ids       []string          // employee ids, sorted
	managerOf map[string]string // employee id -> their manager's
	trustA    map[string]int    // employee id -> their answer to trust-a
	personOf  map[string]string // employee id -> person id
	// replyLink is, by employee id, the private reply link shown to those
	// who left a comment (newManagerOrgWith).
	replyLink map[string]string
}

func newManagerOrg(t *testing.T) managerOrg { return newManagerOrgWith(t, e2eSurvey, nil) }

// newManagerOrgWith is newManagerOrg on survey (with e2eSurvey's scale
// questions), in which the people of comments (employee id -> words) also
// answer its comment question "better".
func newManagerOrgWith(t *testing.T, survey schemas.SurveyPublished, comments map[string]string) managerOrg {
	t.Helper()
	m := mustMain(t, nil)
	ctx := context.Background()
	openWaveOf(t, m, survey)
	rows, managerOf := managerRoster()
	links := inviteByEmail(t, m, rows, len(managerOf))
	// Each person's survey token, by their employee id (the mail's To).
	tokenOf := mailedLinks(t, m)
	if len(tokenOf) != len(managerOf) || len(links) != len(managerOf) {
		t.Fatalf("%d links for %d people", len(tokenOf), len(managerOf))
	}

	// Everyone answers; trust-a differs from person to person, the rest is
	// constant, so every mean below pins the set it was computed on.
	ids := sortedKeys(managerOf)
	trustA, replyLink := map[string]int{}, map[string]string{}
	for i, id := range ids {
		trustA[id] = 1 + (i*7)%5
		answers := map[string]int{"trust-a": trustA[id], "trust-b": 3, "auto": 2, "moti": 4, "enps": 7}
		if words, ok := comments[id]; ok {
			replyLink[id] = submitComment(t, m, tokenOf[id], answers, "better", words)
			continue
		}
		submit(t, m, tokenOf[id], answers)
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")
	return managerOrg{m: m, ids: ids, managerOf: managerOf, trustA: trustA, personOf: personIDs(t, m), replyLink: replyLink}
}

// TestManagerGroups checks the manager filters and groups against the
// truth computed from the roster alone: direct reports (manager=), all
// reports at any depth (reports_to=), a lead's own answer counting for
// their head's groups and never for their own, and group_by=manager
// splitting a subtree into its direct-report groups. The roster is
// imported and invited the way an organisation does it (CSV, emails), so
// the reporting lines come from the roster's tree through generalisation.
func TestManagerGroups(t *testing.T) {
	o := newManagerOrg(t)
	m, ids, managerOf, trustA, personOf := o.m, o.ids, o.managerOf, o.trustA, o.personOf
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

// TestManagerScopes: a manager's token (bound to one person of the roster)
// gets the organisation overall and their own subtree, by manager= or
// reports_to= for themself or anyone below them, and a 403 with a reason
// for everything else: another subtree, someone above, a finer slice, a
// group_by, two filters, the organisation-wide comment list. The managers
// list shows a manager their own subtree's managers. Issuing a manager's
// token needs a current employee of the roster.
func TestManagerScopes(t *testing.T) {
	o := newManagerOrg(t)
	m, id := o.m, o.personOf
	ctx := context.Background()
	lead, head := managerTokenOf(t, m, "lead-1"), managerTokenOf(t, m, "head-eng")
	scores := m.QueryURL + "/v1/orgs/acme/waves/w1/scores"
	for _, tc := range []struct {
		who, token, query string
		status            int
		respondents       int // when 200: the served count, -1 for suppressed
	}{
		{"lead-1", lead, "", 200, len(o.ids)},
		{"lead-1", lead, "?manager=" + id["lead-1"], 200, 5},
		{"lead-1", lead, "?reports_to=" + id["lead-1"], 200, 5},
		{"lead-1", lead, "?manager=" + id["lead-2"], 403, 0},
		{"lead-1", lead, "?reports_to=" + id["head-eng"], 403, 0},
		{"lead-1", lead, "?manager=" + id["head-eng"], 403, 0},
		{"lead-1", lead, "?department=Eng", 403, 0},
		{"lead-1", lead, "?team=eng-1", 403, 0},
		{"lead-1", lead, "?group_by=department", 403, 0},
		{"lead-1", lead, "?reports_to=" + id["lead-1"] + "&group_by=manager", 403, 0},
		{"lead-1", lead, "?reports_to=" + id["lead-1"] + "&manager=" + id["lead-1"], 403, 0},
		{"lead-1", lead, "?reports_to=" + id["eng-1-1"], 200, -1}, // in reach, manages nobody
		{"lead-1", lead, "?reports_to=not-a-person", 400, 0},
		{"head-eng", head, "?reports_to=" + id["head-eng"], 200, 30},
		{"head-eng", head, "?manager=" + id["head-eng"], 200, 5},
		{"head-eng", head, "?manager=" + id["lead-3"], 200, 5},
		{"head-eng", head, "?reports_to=" + id["lead-sales"], 403, 0},
		{"head-eng", head, "?manager=" + id["ceo"], 403, 0},
	} {
		status, body := getAs(t, tc.token, scores+tc.query)
		if status != tc.status {
			t.Errorf("%s %s: %d %.200s, want %d", tc.who, tc.query, status, body, tc.status)
			continue
		}
		if status != 200 {
			var p struct {
				Code, Detail string
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Code == "" || p.Detail == "" {
				t.Errorf("%s %s: %d with body %s, want a problem with a code and a reason", tc.who, tc.query, status, body)
			}
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.respondents < 0 && r.Respondents.N != nil:
			t.Errorf("%s %s: %d respondents served, want suppressed", tc.who, tc.query, *r.Respondents.N)
		case tc.respondents >= 0 && (r.Respondents.N == nil || *r.Respondents.N != tc.respondents):
			t.Errorf("%s %s: respondents %+v, want %d", tc.who, tc.query, r.Respondents, tc.respondents)
		}
	}

	// The other endpoints that take filters apply the same rule.
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/v1/orgs/acme/waves/w1/participation?reports_to=" + id["lead-1"], 200},
		{"/v1/orgs/acme/waves/w1/participation?reports_to=" + id["lead-2"], 403},
		{"/v1/orgs/acme/trends?manager=" + id["lead-1"], 200},
		{"/v1/orgs/acme/trends?location=Berlin", 403},
		{"/v1/orgs/acme/scores?waves=w1&manager=" + id["lead-2"], 403},
		{"/v1/orgs/acme/waves/w1/comments?question=better", 403},
		{"/v1/orgs/acme/waves/w1/comments?question=better&manager=" + id["lead-2"], 403},
		{"/v1/orgs/acme/retention?group_by=team", 403},
	} {
		if status, body := getAs(t, lead, m.QueryURL+tc.path); status != tc.status {
			t.Errorf("lead-1 %s: %d %.200s, want %d", tc.path, status, body, tc.status)
		}
	}
	if status, body, _ := postAs(t, lead, m.QueryURL+"/v1/orgs/acme/comments/"+"0f8fad5b-d9cb-469f-a165-70867728950e"+"/replies", "application/json", `{"text":"hi"}`); status != http.StatusForbidden {
		t.Errorf("a manager's reply from the organisation-wide list: %d %s, want 403", status, body)
	}

	// The managers list: all of them for an analyst, the subtree's for a
	// manager, none for a leader.
	managers := func(token string) []string {
		t.Helper()
		status, body := getAs(t, token, m.QueryURL+"/v1/orgs/acme/managers")
		if status != 200 {
			t.Fatalf("managers: %d %s", status, body)
		}
		var r struct {
			Managers []struct {
				EmployeeID    string `json:"employee_id"`
				PersonID      string `json:"person_id"`
				DirectReports int    `json:"direct_reports"`
			} `json:"managers"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mg := range r.Managers {
			if mg.PersonID != id[mg.EmployeeID] {
				t.Errorf("manager %s listed with person id %s, want %s", mg.EmployeeID, mg.PersonID, id[mg.EmployeeID])
			}
			out = append(out, fmt.Sprintf("%s:%d", mg.EmployeeID, mg.DirectReports))
		}
		return out
	}
	analyst, _ := testTokens.Load(m)
	want := []string{"ceo:2", "head-eng:5", "head-sales:1", "lead-1:5", "lead-2:5", "lead-3:5", "lead-4:5", "lead-5:5", "lead-sales:5"}
	if got := managers(analyst.(string)); !slices.Equal(got, want) {
		t.Errorf("managers for an analyst: %v, want %v", got, want)
	}
	if got := managers(head); !slices.Equal(got, []string{"head-eng:5", "lead-1:5", "lead-2:5", "lead-3:5", "lead-4:5", "lead-5:5"}) {
		t.Errorf("managers for head-eng: %v", got)
	}
	if got := managers(lead); !slices.Equal(got, []string{"lead-1:5"}) {
		t.Errorf("managers for lead-1: %v", got)
	}
	leader := authorize(t, m, schemas.RoleLeader)
	if status, _ := getAs(t, leader, m.QueryURL+"/v1/orgs/acme/managers"); status != http.StatusForbidden {
		t.Errorf("managers for a leader: %d, want 403", status)
	}

	// A manager's token needs a current employee; the other roles take none.
	if _, _, err := m.Admin.IssueToken(ctx, "acme", schemas.RoleManager, "x"); err == nil {
		t.Error("a manager's token issued without an employee")
	}
	if _, _, _, err := m.Admin.IssueManagerToken(ctx, "acme", "nobody", "x"); err == nil || !strings.Contains(err.Error(), "not on the roster") {
		t.Errorf("a manager's token for an unknown employee: %v", err)
	}
	// Re-imported without the advisor, who has left.
	all, _ := managerRoster()
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		if !strings.HasPrefix(line, "advisor,") {
			kept = append(kept, line)
		}
	}
	rows, err := ingest.ParseRoster(strings.NewReader(strings.Join(ingest.RosterColumns, ",")+"\n"+strings.Join(kept, "\n")+"\n"), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admin.ImportRoster(ctx, "acme", rows, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Admin.IssueManagerToken(ctx, "acme", "advisor", "x"); err == nil || !strings.Contains(err.Error(), "left") {
		t.Errorf("a manager's token for a leaver: %v", err)
	}
}

// sunkMail is one email in the development mail sink.
type sunkMail struct {
	to, subject string
	raw         []byte
}

// sinkMails reads every email in m's mail sink, with its recipient's
// address and its subject.
func sinkMails(t *testing.T, m *Main) []sunkMail {
	t.Helper()
	files, err := m.MailSink.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var out []sunkMail
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
		out = append(out, sunkMail{to: to.Address, subject: msg.Header.Get("Subject"), raw: raw})
	}
	return out
}
