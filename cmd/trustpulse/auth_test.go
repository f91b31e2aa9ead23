package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestQueryAuth: every query endpoint needs a token of the organisation,
// leaders see no slices finer than departments, and a revoked or malformed
// token is refused.
func TestQueryAuth(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := testTokens.Load(m)
	leader := authorize(t, m, schemas.RoleLeader)
	other, _, err := m.Admin.IssueToken(ctx, "other", schemas.RoleAnalyst, "another organisation")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if status, _ := getAs(t, other, m.QueryURL+"/v1/orgs/other/waves"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other organisation's token never became usable")
		}
	}
	waves := m.QueryURL + "/v1/orgs/acme/waves"
	for name, tc := range map[string]struct {
		token, url string
		status     int
		code       string
	}{
		"ErrNoToken":        {"", waves, 401, "unauthorized"},
		"ErrMalformed":      {"not-a-token", waves, 401, "unauthorized"},
		"ErrUnknown":        {ingest.APITokenPrefix + ingest.NewToken(), waves, 401, "unauthorized"},
		"ErrOtherOrg":       {other, waves, 403, "forbidden"},
		"ErrOtherOrgScores": {other, m.QueryURL + "/v1/orgs/acme/waves/w1/scores", 403, "forbidden"},
		"ErrLeaderByTeam":   {leader, m.QueryURL + "/v1/orgs/acme/waves/w1/scores?group_by=team", 403, "forbidden"},
		"OKLeader":          {leader, waves, 200, ""},
		"OKAnalyst":         {analyst.(string), waves, 200, ""},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := getAs(t, tc.token, tc.url)
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
			if tc.code != "" {
				var p schemas.Problem
				if json.Unmarshal([]byte(body), &p) != nil || p.Code != tc.code {
					t.Fatalf("%s, want code %s", body, tc.code)
				}
				if strings.Contains(body, "acme") && tc.status == 403 {
					t.Fatalf("refusal names the organisation: %s", body)
				}
			}
		})
	}
	// Leaders may see departments (here the wave does not exist: 404, not 403).
	if status, _ := getAs(t, leader, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?group_by=department"); status != http.StatusNotFound {
		t.Fatalf("leader by department: %d, want 404 for the missing wave", status)
	}

	// Revocation takes effect within the token cache's few seconds.
	token, id, err := m.Admin.IssueToken(ctx, "acme", schemas.RoleAnalyst, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if status, _ := getAs(t, token, waves); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new token never became usable")
		}
	}
	if err := m.Admin.RevokeToken(ctx, "acme", id); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := getAs(t, token, waves); status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked token still accepted after 30s")
		}
	}
}
