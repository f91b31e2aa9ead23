package query

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// paramSeeds are query strings from the tests of the query API and the
// dashboards (scopes_test.go, redteam_crash_test.go and others).
var paramSeeds = []string{
	"", "department=", "department=%7F", "department=%C3%28", "department=Engineering",
	"department=Engineering&group_by=team", "department=Sales&department=Legal", "department=Sales&location=Berlin",
	"departmnet=Sales", "format=csv", "format=csv&department=Sales", "format=csv&group_by=location&department=Sales",
	"from=", "from=0001-01-01&to=9999-12-31", "from=2001-01-01&to=2001-12-31", "from=2020-02-30&to=2020-03-01",
	"from=2026-02-01&to=2026-01-01", "from=2026-13-01", "from=x", "from=yesterday&to=2026-01-01",
	"group_by=", "group_by=department", "group_by=email", "group_by=team&team=s", "group_by=tenure_band",
	"location=Berlin&group_by=department", "question=better&department=%00", "team=eng-1&group_by=team",
	"tenure_band=", "waves=,", "waves=w0", "waves=w1,w0&department=Sales&location=Berlin", "waves=w1,nope",
	"waves=w1,w1", "waves=w1&from=2020-01-01&to=2020-01-02", "department=" + strings.Repeat("%C3%A9", 60),
	"manager=0f8fad5b-d9cb-469f-a165-70867728950e", "reports_to=0f8fad5b-d9cb-469f-a165-70867728950e&group_by=manager",
	"manager=0F8FAD5B-D9CB-469F-A165-70867728950E", "reports_to=alice", "group_by=manager&manager=0f8fad5b-d9cb-469f-a165-70867728950e",
	"group_by=reports_to",
}

// sliceEndpoints are the parameters besides filters that each endpoint
// taking filters allows, as its handler passes them to sliceRequest.
var sliceEndpoints = [][]string{
	{"group_by", "format"},                        // wave scores, participation
	{"waves", "from", "to", "group_by", "format"}, // period scores
	{"format"},   // trends
	{"question"}, // comments
}

var fuzzRoles = []schemas.Role{schemas.RoleAnalyst, schemas.RoleLeader, schemas.RoleAdmin, schemas.RoleManager}

// fuzzReach is the fuzzed manager's reach: the person id of paramSeeds.
var fuzzReach = map[string]bool{"0f8fad5b-d9cb-469f-a165-70867728950e": true}

func argsOf(raw string) *fasthttp.Args {
	var a fasthttp.Args
	a.Parse(raw)
	return &a
}

// mustRefuseAs4xx fails unless err is a request error with a 4xx status.
func mustRefuseAs4xx(t *testing.T, raw string, err error) {
	t.Helper()
	var e *schemas.Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 || e.Code == "" {
		t.Fatalf("%q refused with %v (%T), want a 4xx schemas.Error", raw, err, err)
	}
}

// FuzzParseSlice: the filters and group_by of every endpoint that takes
// them never panic; what is accepted keeps the Scope's promises (one
// clause per known attribute, sorted, each value 1 to MaxAttrLen printable
// bytes; group_by known and not filtered by; finer slices only for roles
// that may) and reads back the same once re-encoded; everything else is a
// 4xx.
func FuzzParseSlice(f *testing.F) {
	for _, s := range paramSeeds {
		f.Add(s, uint8(0), uint8(0))
		f.Add(s, uint8(1), uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw string, endpoint, role uint8) {
		extra := sliceEndpoints[int(endpoint)%len(sliceEndpoints)]
		p := &Principal{Org: "acme", Role: fuzzRoles[int(role)%len(fuzzRoles)], Reach: fuzzReach}
		filter, groupBy, err := parseSlice(argsOf(raw), p, extra...)
		if err != nil {
			mustRefuseAs4xx(t, raw, err)
			return
		}
		if _, ok := GroupColumns[groupBy]; groupBy != "" && (!ok || !slices.Contains(extra, "group_by")) {
			t.Fatalf("%q: group_by %q accepted", raw, groupBy)
		}
		for i, c := range filter {
			v := c.Values[0]
			switch {
			case (GroupColumns[c.Attr] == "" && c.Attr != ReportsTo) || len(c.Values) != 1:
				t.Fatalf("%q: clause %+v", raw, c)
			case (c.Attr == "manager" || c.Attr == ReportsTo) && !schemas.ValidPersonID(v):
				t.Fatalf("%q: %s=%q is not a person id", raw, c.Attr, v)
			case i > 0 && filter[i-1].Attr >= c.Attr:
				t.Fatalf("%q: clauses not sorted or repeated: %+v", raw, filter)
			case v == "" || len(v) > schemas.MaxAttrLen || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' }):
				t.Fatalf("%q: value %q of %s accepted", raw, v, c.Attr)
			case c.Attr == groupBy:
				t.Fatalf("%q: filtered and grouped by %s", raw, c.Attr)
			case p.Role == schemas.RoleLeader && c.Attr != "department":
				t.Fatalf("%q: a leader filters by %s", raw, c.Attr)
			}
		}
		if p.Role == schemas.RoleLeader && groupBy != "" && groupBy != "department" {
			t.Fatalf("%q: a leader groups by %s", raw, groupBy)
		}
		if p.Role == schemas.RoleManager && (groupBy != "" || len(filter) > 1 ||
			len(filter) == 1 && (filter[0].Attr != "manager" && filter[0].Attr != ReportsTo || !p.Reach[filter[0].Values[0]])) {
			t.Fatalf("%q: a manager gets filter %+v group_by %q", raw, filter, groupBy)
		}
		var again fasthttp.Args
		for _, c := range filter {
			again.Add(c.Attr, c.Values[0])
		}
		if groupBy != "" {
			again.Add("group_by", groupBy)
		}
		filter2, groupBy2, err := parseSlice(argsOf(string(again.QueryString())), p, extra...)
		if err != nil || groupBy2 != groupBy || !slices.EqualFunc(filter, filter2, func(a, b Clause) bool {
			return a.Attr == b.Attr && slices.Equal(a.Values, b.Values)
		}) {
			t.Fatalf("%q: re-encoded as %q reads back %+v %q %v, want %+v %q", raw, again.QueryString(), filter2, groupBy2, err, filter, groupBy)
		}
	})
}

// FuzzParsePeriod: a period is listed waves (1 to MaxPeriodWaves valid
// ids, none twice) or two days in order, and reads back the same once
// re-encoded; anything else is a 4xx.
func FuzzParsePeriod(f *testing.F) {
	for _, s := range paramSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		per, err := parsePeriod(argsOf(raw))
		if err != nil {
			mustRefuseAs4xx(t, raw, err)
			return
		}
		var again fasthttp.Args
		if per.Waves != nil {
			seen := map[string]bool{}
			for _, id := range per.Waves {
				if !schemas.ValidID(id) || seen[id] {
					t.Fatalf("%q: waves %q accepted", raw, per.Waves)
				}
				seen[id] = true
			}
			if len(per.Waves) > MaxPeriodWaves || !per.From.IsZero() || !per.To.IsZero() {
				t.Fatalf("%q: %+v", raw, per)
			}
			again.Add("waves", strings.Join(per.Waves, ","))
		} else {
			if per.To.Before(per.From) {
				t.Fatalf("%q: to %s before from %s", raw, per.To, per.From)
			}
			again.Add("from", per.From.Format(time.DateOnly))
			again.Add("to", per.To.Format(time.DateOnly))
		}
		per2, err := parsePeriod(argsOf(string(again.QueryString())))
		if err != nil || !slices.Equal(per.Waves, per2.Waves) || !per.From.Equal(per2.From) || !per.To.Equal(per2.To) {
			t.Fatalf("%q: re-encoded as %q reads back %+v %v, want %+v", raw, again.QueryString(), per2, err, per)
		}
	})
}

// FuzzParseRetention: a retention request groups by a retention column
// over from before to (both midnights UTC), and reads back the same once
// re-encoded; anything else is a 4xx.
func FuzzParseRetention(f *testing.F) {
	for _, s := range paramSeeds {
		f.Add(s, uint8(0))
	}
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string, role uint8) {
		p := &Principal{Org: "acme", Role: fuzzRoles[int(role)%len(fuzzRoles)]}
		r, err := parseRetention(argsOf(raw), p, now)
		if err != nil {
			mustRefuseAs4xx(t, raw, err)
			return
		}
		if _, ok := retentionColumns[r.GroupBy]; !ok || !r.From.Before(r.To) ||
			r.From.Location() != time.UTC || r.To.Location() != time.UTC || !r.From.Equal(r.From.Truncate(24*time.Hour)) {
			t.Fatalf("%q: accepted as %+v", raw, r)
		}
		if p.Role == schemas.RoleLeader && r.GroupBy != "" && r.GroupBy != "department" {
			t.Fatalf("%q: a leader groups by %s", raw, r.GroupBy)
		}
		var again fasthttp.Args
		again.Add("group_by", r.GroupBy)
		again.Add("from", r.From.Format(schemas.DateLayout))
		again.Add("to", r.To.Format(schemas.DateLayout))
		r2, err := parseRetention(argsOf(string(again.QueryString())), p, now)
		if err != nil || r2 != r {
			t.Fatalf("%q: re-encoded as %q reads back %+v %v, want %+v", raw, again.QueryString(), r2, err, r)
		}
	})
}

// TestParamRefusalsAreProblems: the seeds that the parsers refuse come
// back through the query API's error handler as 4xx problem+json.
func TestParamRefusalsAreProblems(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := fiber.New(fiber.Config{ErrorHandler: httpproblem.ErrorHandler(log)})
	p := &Principal{Org: "acme", Role: schemas.RoleLeader}
	app.Get("/slice", func(c *fiber.Ctx) error {
		_, _, err := parseSlice(c.Context().QueryArgs(), p, "waves", "from", "to", "group_by", "format")
		return err
	})
	app.Get("/period", func(c *fiber.Ctx) error { _, err := parsePeriod(c.Context().QueryArgs()); return err })
	app.Get("/retention", func(c *fiber.Ctx) error {
		_, err := parseRetention(c.Context().QueryArgs(), p, time.Now())
		return err
	})
	refused := 0
	for _, path := range []string{"/slice", "/period", "/retention"} {
		for _, raw := range paramSeeds {
			resp, err := app.Test(httptest.NewRequest(http.MethodGet, path+"?"+raw, nil))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				continue
			}
			refused++
			if resp.StatusCode < 400 || resp.StatusCode >= 500 || resp.Header.Get("Content-Type") != "application/problem+json" || !utf8.Valid(body) {
				t.Errorf("%s?%s: %d %s %s", path, raw, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no seed refused")
	}
}

// TestParseManagerFilters: manager and reports_to take one person id each
// (canonical lower-case UUIDs) for analysts, group_by takes manager, and
// neither is open to leaders or a group_by of reports_to.
func TestParseManagerFilters(t *testing.T) {
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	analyst := &Principal{Org: "acme", Role: schemas.RoleAnalyst}
	leader := &Principal{Org: "acme", Role: schemas.RoleLeader}
	filter, groupBy, err := parseSlice(argsOf("reports_to="+id+"&team=eng&group_by=manager"), analyst, "group_by")
	if err != nil {
		t.Fatal(err)
	}
	want := []Clause{{Attr: ReportsTo, Values: []string{id}}, {Attr: "team", Values: []string{"eng"}}}
	if groupBy != "manager" || !slices.EqualFunc(filter, want, func(a, b Clause) bool { return a.Attr == b.Attr && slices.Equal(a.Values, b.Values) }) {
		t.Fatalf("got %+v group_by %q, want %+v group_by manager", filter, groupBy, want)
	}
	for _, tc := range []struct {
		raw  string
		p    *Principal
		code int
	}{
		{"manager=" + strings.ToUpper(id), analyst, http.StatusBadRequest},
		{"reports_to=alice", analyst, http.StatusBadRequest},
		{"group_by=reports_to", analyst, http.StatusBadRequest},
		{"manager=" + id + "&group_by=manager", analyst, http.StatusBadRequest},
		{"manager=" + id, leader, http.StatusForbidden},
		{"reports_to=" + id, leader, http.StatusForbidden},
		{"group_by=manager", leader, http.StatusForbidden},
	} {
		_, _, err := parseSlice(argsOf(tc.raw), tc.p, "group_by")
		var e *schemas.Error
		if !errors.As(err, &e) || e.Status != tc.code {
			t.Errorf("%s as %s: %v, want %d", tc.raw, tc.p.Role, err, tc.code)
		}
	}
}
