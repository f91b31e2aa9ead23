package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// Red-team helpers. Every attack goes through the query API over HTTP;
// only building the organisation (surveys, waves, invitations) takes the
// admin shortcut.

// redSurvey is a pulse whose every numeric item may be skipped, with one
// comment question: a survey an organisation may well publish.
var redSurvey = schemas.SurveyPublished{SurveyID: "pulse-r", Title: "Pulse", Questions: []schemas.Question{
	{ID: "trust-a", Text: "I trust my manager.", Dimension: schemas.Trust, Driver: "manager", Optional: true},
	{ID: "trust-b", Text: "Leaders explain decisions.", Dimension: schemas.Trust, Driver: "leadership", Optional: true},
	{ID: "auto", Text: "I decide how I reach my goals.", Dimension: schemas.Empowerment, Driver: "autonomy", Optional: true},
	{ID: "moti", Text: "My work motivates me.", Dimension: schemas.Motivation, Driver: "meaning", Optional: true},
	{ID: "enps", Text: "Recommend us?", Dimension: schemas.ENPS, Optional: true},
	{ID: "better", Text: "What would make work better?", Dimension: schemas.Comment},
}}

// redResponse is what one invitee sends: nil means no response.
type redResponse struct {
	answers map[string]int
	comment string
}

// redWave opens wave id of redSurvey, invites cohorts, sends respond(i)
// for each, closes the wave and waits for its release.
func redWave(t *testing.T, m *Main, id string, opens time.Time, cohorts []schemas.Cohort, respond func(i int) *redResponse) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", redSurvey); err != nil {
		t.Fatal(err)
	}
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: id, SurveyID: redSurvey.SurveyID, OpensAt: opens, ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", id, cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		r := respond(i)
		if r == nil {
			continue
		}
		body := map[string]any{"token": tok, "answers": r.answers}
		if r.comment != "" {
			body["comments"] = map[string]string{"better": r.comment}
		}
		if r.answers == nil {
			body["answers"] = map[string]int{}
		}
		if status, resp := postJSON(t, m.IngestURL+"/v1/responses", body); status != http.StatusAccepted {
			t.Fatalf("submit %d: %d %s", i, status, resp)
		}
	}
	if err := m.Admin.CloseWave(ctx, "acme", id); err != nil {
		t.Fatal(err)
	}
	waitWaveReleased(t, m, id)
}

// redComments fetches a comment list through the API.
func redComments(t *testing.T, token, base, wave, query string) commentsResult {
	t.Helper()
	status, body := getAs(t, token, base+"/v1/orgs/acme/waves/"+wave+"/comments?question=better"+query)
	if status != http.StatusOK {
		t.Fatalf("comments %s%s: %d %s", wave, query, status, body)
	}
	var r commentsResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// redScores fetches a scores result through the API.
func redScores(t *testing.T, token, u string) result {
	t.Helper()
	status, body := getAs(t, token, u)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", u, status, body)
	}
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func q(v string) string { return url.QueryEscape(v) }

func all(v int) map[string]int {
	return map[string]int{"trust-a": v, "trust-b": v, "auto": v, "moti": v, "enps": 2 * v}
}

func dimMean(r result, dim string) (float64, bool) {
	for _, d := range r.Dimensions {
		if d.Dimension == dim && d.Mean != nil {
			return *d.Mean, true
		}
	}
	return 0, false
}
