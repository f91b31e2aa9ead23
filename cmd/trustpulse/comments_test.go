package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

var commentSurvey = schemas.SurveyPublished{SurveyID: "pulse-c", Title: "Pulse", Questions: []schemas.Question{
	{ID: "trust-a", Text: "I trust my manager.", Dimension: schemas.Trust},
	{ID: "better", Text: "What would make work better?", Dimension: schemas.Comment},
}}

type commentsResult struct {
	Threshold   int      `json:"threshold"`
	Suppressed  bool     `json:"suppressed"`
	Respondents *int     `json:"respondents"`
	Comments    []string `json:"comments"`
}

// TestComments: comments are shown word for word to groups of at least
// ten respondents only, never beside a slice that would narrow their
// authors below ten, and bad comments are refused with nothing recorded.
func TestComments(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", commentSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse-c", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Sales: 12 in Berlin and 1 in Lisbon; Ops: 10; Legal: 3.
	var cohorts []schemas.Cohort
	add := func(n int, dept, loc string) {
		for range n {
			cohorts = append(cohorts, schemas.Cohort{Department: dept, Team: dept, Location: loc, TenureBand: "1-2y"})
		}
	}
	add(12, "Sales", "Berlin")
	add(1, "Sales", "Lisbon")
	add(10, "Ops", "Berlin")
	add(3, "Legal", "Berlin")
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}

	// Bad comments are refused, and the link still works afterwards.
	for _, body := range []map[string]any{
		{"answers": map[string]int{"trust-a": 3}, "comments": map[string]string{"better": strings.Repeat("x", schemas.MaxCommentLen+1)}},
		{"answers": map[string]int{"trust-a": 3}, "comments": map[string]string{"trust-a": "words"}},
		{"answers": map[string]int{"trust-a": 3, "better": 4}},
		{"answers": map[string]int{"trust-a": 3}, "comments": map[string]string{"nope": "words"}},
	} {
		body["token"] = tokens[0]
		status, resp := postJSON(t, m.IngestURL+"/v1/responses", body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(resp, "invalid_answers") {
			t.Errorf("bad comment %v: %d %s", body["comments"], status, resp)
		}
	}

	var written []string
	for i, tok := range tokens {
		text := fmt.Sprintf("  idea number %d from %s\r\n", i, cohorts[i].Department)
		if i%4 == 3 {
			text = "" // not everyone comments
		}
		body := map[string]any{"token": tok, "answers": map[string]int{"trust-a": 1 + i%5}, "comments": map[string]string{"better": text}}
		if status, resp := postJSON(t, m.IngestURL+"/v1/responses", body); status != http.StatusAccepted {
			t.Fatalf("submit: %d %s", status, resp)
		}
		if text != "" {
			written = append(written, strings.TrimSpace(text))
		}
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "")

	comments := func(query string) commentsResult {
		t.Helper()
		status, body := get(t, m, "/v1/orgs/acme/waves/w1/comments?question=better"+query)
		if status != http.StatusOK {
			t.Fatalf("comments%s: %d %s", query, status, body)
		}
		var r commentsResult
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if r.Suppressed && (r.Respondents != nil || r.Comments != nil || strings.Contains(body, "idea")) {
			t.Fatalf("suppressed comments carry something: %s", body)
		}
		return r
	}
	all := comments("")
	if all.Suppressed || all.Threshold != 10 || *all.Respondents != 26 {
		t.Fatalf("organisation-wide comments: %+v", all)
	}
	got, want := slices.Sorted(slices.Values(all.Comments)), slices.Sorted(slices.Values(written))
	if !slices.Equal(got, want) {
		t.Fatalf("comments %q, want %q", got, want)
	}
	if legal := comments("&department=Legal"); !legal.Suppressed {
		t.Errorf("Legal (3 respondents) comments shown: %+v", legal)
	}
	sales := comments("&department=Sales")
	if sales.Suppressed || *sales.Respondents != 13 {
		t.Fatalf("Sales (13) comments: %+v", sales)
	}
	for _, c := range sales.Comments {
		if !strings.HasSuffix(c, "Sales") {
			t.Errorf("Sales comments hold %q", c)
		}
	}
	// Ops (10) beside everyone (26) and Sales (13) would give away Legal's
	// comments (everyone's minus Sales' minus Ops'): refused, though 10 is
	// the threshold.
	if ops := comments("&department=Ops"); !ops.Suppressed {
		t.Errorf("Ops comments shown beside everyone's and Sales': %+v", ops)
	}
	// Sales in Berlin (12) beside Sales (13) would single out the one in
	// Lisbon: refused, though 12 is above the threshold.
	if berlin := comments("&department=Sales&location=Berlin"); !berlin.Suppressed {
		t.Errorf("Sales-Berlin comments shown beside Sales': %+v", berlin)
	}

	// Bad requests.
	for _, tc := range []struct{ query, code string }{
		{"", "invalid_question"},
		{"?question=trust-a", "invalid_question"},
		{"?question=better&group_by=department", "invalid_parameter"},
	} {
		status, body := get(t, m, "/v1/orgs/acme/waves/w1/comments"+tc.query)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.code) {
			t.Errorf("comments%s: %d %s, want 400 %s", tc.query, status, body, tc.code)
		}
	}
}

// postJSON posts a JSON body and returns the status and the body.
func postJSON(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}
