package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
)

// TestRetention: leavers of a roster re-import show up as attrition per
// department; a department too small is suppressed with its complement.
func TestRetention(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	var all, staying strings.Builder
	add := func(dept string, n, leave int) {
		for i := range n {
			row := fmt.Sprintf("%s-%d,%s%d@example.com,P %s %d,%s,T,Berlin,,2023-02-01\n", strings.ToLower(dept), i, strings.ToLower(dept), i, dept, i, dept)
			all.WriteString(row)
			if i >= leave {
				staying.WriteString(row)
			}
		}
	}
	add("Engineering", 8, 2)
	add("Sales", 6, 1)
	add("Legal", 2, 0)
	head := strings.Join(ingest.RosterColumns, ",") + "\n"
	for _, csv := range []string{all.String(), staying.String()} {
		rows, err := ingest.ParseRoster(strings.NewReader(head+csv), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Admin.ImportRoster(ctx, "acme", rows, nil); err != nil {
			t.Fatal(err)
		}
	}
	from, to := time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"), time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	type result struct {
		Overall struct {
			Headcount, Leavers *int
			Attrition          *float64
		} `json:"overall"`
		Groups []struct {
			Value      string   `json:"value"`
			Suppressed bool     `json:"suppressed"`
			Headcount  *int     `json:"headcount"`
			Leavers    *int     `json:"leavers"`
			Attrition  *float64 `json:"attrition"`
		} `json:"groups"`
	}
	var out result
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		status, body := get(t, m, "/v1/orgs/acme/retention?group_by=department&from="+from+"&to="+to)
		out = result{} // decode afresh: Unmarshal keeps fields the last poll set
		if status != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("retention: %d %s", status, body)
		}
		if out.Overall.Leavers != nil && *out.Overall.Leavers == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention never showed the 3 leavers: %s", body)
		}
	}
	if *out.Overall.Headcount != 16 || *out.Overall.Attrition != 0.188 {
		t.Fatalf("overall %+v, want 16 people, 3 leavers", out.Overall)
	}
	for _, g := range out.Groups {
		switch g.Value {
		case "Engineering":
			if g.Suppressed || *g.Headcount != 8 || *g.Leavers != 2 || *g.Attrition != 0.25 {
				t.Errorf("Engineering %+v, want 8 and 2", g)
			}
		case "Legal", "Sales": // Legal is too small; Sales is hidden as its complement
			if !g.Suppressed || g.Headcount != nil || g.Leavers != nil {
				t.Errorf("%s served: %+v", g.Value, g)
			}
		}
	}
	if status, _ := get(t, m, "/v1/orgs/acme/retention?from=2026-13-01"); status != http.StatusBadRequest {
		t.Fatalf("bad date: %d", status)
	}
}
