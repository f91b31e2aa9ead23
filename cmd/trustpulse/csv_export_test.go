package main

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestCSVExportsNeutraliseFormulas: a cohort value that a spreadsheet would
// run as a formula comes back from the API's and the dashboard's CSV
// exports as text (a leading single quote), while numbers stay numbers: a
// negative vs_org is written as -0.x, not quoted.
func TestCSVExportsNeutraliseFormulas(t *testing.T) {
	const evil = `=HYPERLINK("http://x","y")`
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	var cohorts []schemas.Cohort
	for i := range 16 {
		dept := "Sales"
		if i%2 == 0 {
			dept = evil
		}
		cohorts = append(cohorts, schemas.Cohort{Department: dept, Team: "T", Location: "Berlin", TenureBand: "1-2y"})
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		v := 5 // Sales answers higher, so the other department's vs_org is negative
		if cohorts[i].Department == evil {
			v = 2 + i%2
		}
		submit(t, m, tok, map[string]int{"trust-a": v, "trust-b": v, "auto": v, "moti": v, "enps": 2 * v})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitScores(t, m, "?group_by=department")

	check := func(where, body string, wantNegative bool) {
		t.Helper()
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("%s: %v\n%s", where, err, body)
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		sawEvil, negatives := false, 0
		for _, row := range rows[1:] {
			for i, cell := range row {
				if cell != "" && strings.ContainsRune("=+@\t\r", rune(cell[0])) {
					t.Errorf("%s: column %s starts a formula: %q", where, rows[0][i], cell)
				}
			}
			if row[col["group"]] == "'"+evil {
				sawEvil = true
				if i, ok := col["vs_org"]; ok && row[i] != "" {
					if v, err := strconv.ParseFloat(row[i], 64); err != nil || v >= 0 {
						t.Errorf("%s: vs_org %q of the lower department, want a negative number", where, row[i])
					}
					negatives++
				}
			}
		}
		if !sawEvil {
			t.Errorf("%s: no group cell %q:\n%s", where, "'"+evil, body)
		}
		if wantNegative && negatives == 0 {
			t.Errorf("%s: no negative vs_org:\n%s", where, body)
		}
	}

	for _, path := range []string{
		"/v1/orgs/acme/waves/w1/scores?group_by=department&format=csv",
		"/v1/orgs/acme/waves/w1/participation?group_by=department&format=csv",
	} {
		status, body := get(t, m, path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		check(path, body, strings.Contains(path, "scores"))
	}

	token, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	d := newDashClient(t, m)
	if resp, body := d.signIn(token); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	resp, body := d.do(http.MethodGet, "/export/scores?group_by=department", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("dashboard export: %d %s", resp.StatusCode, body)
	}
	check("dashboard export", body, true)
}
