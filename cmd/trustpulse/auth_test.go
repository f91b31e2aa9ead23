package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/query/api"
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
	checkEveryEndpoint(t, m, other, leader)

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

// orgEndpoints lists every organisation endpoint of the served OpenAPI
// description (which TestOpenAPIMatchesRoutes holds to the real routes),
// with the wave w1 and the parameters each needs.
func orgEndpoints(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	need := map[string]string{"/v1/orgs/{org}/scores": "?waves=w1", "/v1/orgs/{org}/waves/{wave}/comments": "?question=better"}
	var out []string
	for path, ops := range doc.Paths {
		// Reads only: a write (a reply to a comment) checks its tokens and
		// its list in its own tests (TestRepliesBadInput).
		if _, get := ops["get"]; !get || !strings.HasPrefix(path, "/v1/orgs/{org}/") {
			continue
		}
		out = append(out, strings.NewReplacer("{org}", "acme", "{wave}", "w1").Replace(path)+need[path])
	}
	slices.Sort(out)
	if len(out) < 8 {
		t.Fatalf("only %d organisation endpoints documented: %v", len(out), out)
	}
	return out
}

// checkEveryEndpoint: every organisation endpoint refuses a missing,
// malformed or unknown token (401) and another organisation's (403), and
// refuses leaders any slice finer than departments (403) — before it looks
// at the data.
func checkEveryEndpoint(t *testing.T, m *Main, other, leader string) {
	for _, ep := range orgEndpoints(t) {
		url := m.QueryURL + ep
		for _, tc := range []struct {
			token  string
			status int
		}{{"", 401}, {"Bearer-less", 401}, {ingest.APITokenPrefix + ingest.NewToken(), 401}, {other, 403}} {
			if status, body := getAs(t, tc.token, url); status != tc.status {
				t.Errorf("%s with token %.12q: %d %s, want %d", ep, tc.token, status, body, tc.status)
			}
		}
		sep := "?"
		if strings.Contains(ep, "?") {
			sep = "&"
		}
		slice := "team=a"
		switch {
		case strings.HasSuffix(ep, "/waves") || strings.HasSuffix(ep, "/drivers") || strings.HasSuffix(ep, "/live") || strings.HasSuffix(ep, "/plan-impact"):
			continue // organisation-wide or fixed to departments
		case strings.HasSuffix(ep, "/retention"):
			slice = "group_by=team"
		}
		if status, body := getAs(t, leader, url+sep+slice); status != 403 {
			t.Errorf("%s: leader slicing by team: %d %s, want 403", ep, status, body)
		}
		// A misspelt filter is an error, not a wider result.
		if status, body := getAs(t, other, m.QueryURL+"/v1/orgs/other"+strings.TrimPrefix(ep, "/v1/orgs/acme")+sep+"departmnet=Sales"); status != 400 || !strings.Contains(body, "invalid_parameter") {
			t.Errorf("%s: misspelt parameter: %d %s, want 400 invalid_parameter", ep, status, body)
		}
	}
}

// TestQueryAPIHeaders: the query API's answers, errors included, carry
// the security headers (issue 12, item 8).
func TestQueryAPIHeaders(t *testing.T) {
	m := mustMain(t, nil)
	token := authorize(t, m, schemas.RoleAnalyst)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v1/orgs/acme/waves", token, http.StatusOK},
		{"/v1/orgs/acme/waves", "", http.StatusUnauthorized},
		{"/v1/orgs/acme/waves/nope/scores", token, http.StatusNotFound},
		{"/v1/nowhere", token, http.StatusNotFound},
	} {
		req, _ := http.NewRequest(http.MethodGet, m.QueryURL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s: %s %q, want %q", tc.path, h, got, want)
			}
		}
	}
}
