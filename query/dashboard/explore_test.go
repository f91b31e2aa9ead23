package dashboard

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/valyala/fasthttp"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// FuzzParseExplore: the explorer's form never panics; what it accepts
// names released waves (none twice), one clause per known attribute with a
// value of at most MaxAttrLen bytes and no control character, a known
// group-by not also filtered by, slices the role may see (a manager: no
// group-by and at most one manager= or reports_to= clause naming someone
// in their reach), and reads back the same from the query string the page
// links to; anything else is a 4xx. Seeds are the explorer's URLs from the
// tests.
// The person ids of the fuzzed manager, a manager below them, and someone
// out of their reach.
const (
	fuzzMe    = "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01"
	fuzzLead  = "0b8e6f2c-4a1d-4e3b-9c7a-5d2f8e1a3b02"
	fuzzOther = "c3d9a1e7-6b2f-4d8c-8e5a-1f7b3c9d2e03"
)

func FuzzParseExplore(f *testing.F) {
	for _, s := range []string{
		"", "wave=w0", "wave=w0&group_by=location", "wave=w0&group_by=team", "wave=w1&wave=w0",
		"wave=w1&wave=w0&group_by=department", "wave=w1&wave=w1&department=Sales&department=Ops", "wave=w9",
		"department=%C3%28", "group_by=team", "department=Sales&group_by=department", "tenure_band=1-2y&location=",
		"scope=reports_to:" + fuzzMe, "wave=w1&scope=manager:" + fuzzLead, "scope=reports_to:" + fuzzOther, "scope=", "scope=team:eng",
		"scope=manager:" + fuzzMe + "&scope=reports_to:" + fuzzMe, "scope=reports_to:" + fuzzMe + "&group_by=team", "scope=reports_to:" + fuzzMe + "&department=Sales",
	} {
		for role := range uint8(3) {
			f.Add(s, role)
		}
	}
	released := []query.WaveInfo{{ID: "w0"}, {ID: "w1"}, {ID: "w2"}}
	f.Fuzz(func(t *testing.T, raw string, n uint8) {
		role := []schemas.Role{schemas.RoleAnalyst, schemas.RoleLeader, schemas.RoleManager}[n%3]
		leader, manager := role == schemas.RoleLeader, role == schemas.RoleManager
		p := &query.Principal{Org: "acme", Role: role}
		if manager {
			p.PersonID, p.Reach = fuzzMe, map[string]bool{fuzzMe: true, fuzzLead: true}
		}
		v := viewer{s: session{Org: "acme", Role: role, PersonID: p.PersonID}, p: p}
		var args fasthttp.Args
		args.Parse(raw)
		r, err := parseExplore(&args, v, released)
		if err != nil {
			var e *schemas.Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 {
				t.Fatalf("%q refused with %v, want a 4xx schemas.Error", raw, err)
			}
			return
		}
		if len(r.waves) == 0 {
			t.Fatalf("%q: no wave (the latest is the default)", raw)
		}
		for i, w := range r.waves {
			if !slices.Contains(released, w) || slices.Contains(r.waves[:i], w) {
				t.Fatalf("%q: waves %+v", raw, r.waves)
			}
		}
		if r.groupBy != "" && !slices.Contains(attrs, r.groupBy) {
			t.Fatalf("%q: group_by %q", raw, r.groupBy)
		}
		if manager && (r.groupBy != "" || len(r.filter) > 1) {
			t.Fatalf("%q: a manager's slice %+v by %q", raw, r.filter, r.groupBy)
		}
		for i, c := range r.filter {
			switch val := c.Values[0]; {
			case manager && ((c.Attr != "manager" && c.Attr != query.ReportsTo) || !p.Reach[val] || len(c.Values) != 1):
				t.Fatalf("%q: a manager's clause %+v", raw, c)
			case manager:
			case !slices.Contains(attrs, c.Attr) || len(c.Values) != 1:
				t.Fatalf("%q: clause %+v", raw, c)
			case i > 0 && r.filter[i-1].Attr >= c.Attr:
				t.Fatalf("%q: clauses not sorted or repeated: %+v", raw, r.filter)
			case val == "" || len(val) > schemas.MaxAttrLen || strings.ContainsFunc(val, unicode.IsControl):
				t.Fatalf("%q: value %q of %s", raw, val, c.Attr)
			case c.Attr == r.groupBy:
				t.Fatalf("%q: filtered and grouped by %s", raw, c.Attr)
			case leader && c.Attr != "department":
				t.Fatalf("%q: a leader filters by %s", raw, c.Attr)
			}
		}
		if leader && r.groupBy != "" && r.groupBy != "department" {
			t.Fatalf("%q: a leader groups by %s", raw, r.groupBy)
		}
		var again fasthttp.Args
		again.Parse(r.query().Encode())
		r2, err := parseExplore(&again, v, released)
		if err != nil || !slices.Equal(r.waves, r2.waves) || r.groupBy != r2.groupBy || !slices.EqualFunc(r.filter, r2.filter, func(a, b query.Clause) bool {
			return a.Attr == b.Attr && slices.Equal(a.Values, b.Values)
		}) {
			t.Fatalf("%q: re-encoded as %q reads back %+v %v, want %+v", raw, r.query().Encode(), r2, err, r)
		}
	})
}
