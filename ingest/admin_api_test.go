package ingest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

const adminToken = "0123456789abcdef0123456789abcdef"

func TestAdminAPI(t *testing.T) {
	e := mustEnv(t)
	api := ingest.NewAdminServer(e.admin, adminToken, testenv.Logger(t))
	call := func(method, path, token, contentType, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := api.App().Test(req, 15000)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := rosterHead + "e1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"
	for name, tc := range map[string]struct {
		token, contentType, body string
		status                   int
		code                     string
	}{
		"ErrNoToken":     {"", "text/csv", good, 401, "unauthorized"},
		"ErrWrongToken":  {strings.Repeat("x", 32), "text/csv", good, 401, "unauthorized"},
		"ErrNotCSV":      {adminToken, "application/json", good, 415, "unsupported_media_type"},
		"ErrBadRoster":   {adminToken, "text/csv", rosterHead + "e1,nope,,Eng,P,B,,2021-04-01\n", 422, "invalid_roster"},
		"ErrEmptyRoster": {adminToken, "text/csv", "", 422, "invalid_roster"},
		// A bare quote in a row's first field once ended the whole process.
		"ErrBareQuote": {adminToken, "text/csv", rosterHead + "e\"1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n", 422, "invalid_roster"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := call(http.MethodPost, "/v1/orgs/acme/roster", tc.token, tc.contentType, tc.body)
			var p schemas.Problem
			if status != tc.status || json.Unmarshal([]byte(body), &p) != nil || p.Code != tc.code {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if strings.Contains(body, "nope") || strings.Contains(body, "example.com") {
				t.Fatalf("problem echoes the input: %s", body)
			}
			if name == "ErrBareQuote" && (len(p.Errors) != 1 || p.Errors[0].Field != "line 2") {
				t.Fatalf("problem does not name line 2: %s", body)
			}
		})
	}
	if people, _ := e.admin.People(t.Context(), "acme"); len(people) != 0 {
		t.Fatalf("rejected requests imported %d people", len(people))
	}
	status, body := call(http.MethodPost, "/v1/orgs/acme/roster", adminToken, "text/csv; charset=utf-8", good)
	if status != http.StatusOK || !strings.Contains(body, `"joined":1`) {
		t.Fatalf("import: %d %s", status, body)
	}
	status, body = call(http.MethodGet, "/v1/orgs/acme/mail-failures", adminToken, "", "")
	if status != http.StatusOK || !strings.Contains(body, `"failures":[]`) {
		t.Fatalf("mail failures: %d %s", status, body)
	}
	if status, _ = call(http.MethodPost, "/v1/orgs/acme/waves/nope/remind", adminToken, "", ""); status != http.StatusConflict {
		t.Fatalf("remind an unknown wave: %d", status)
	}
}
