package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

var today = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

const rosterHead = "employee_id,email,display_name,department,team,location,manager_id,start_date\n"

func TestParseRosterBadInput(t *testing.T) {
	good := "e1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"
	for name, tc := range map[string]struct {
		csv  string
		want []string // each must appear in the error
	}{
		"ErrEmptyFile":      {"", []string{"line 1: the file is empty"}},
		"ErrHeaderOnly":     {rosterHead, []string{"no employees"}},
		"ErrMissingColumns": {"employee_id,email\ne1,a@b.co\n", []string{`missing column "display_name"`, `missing column "start_date"`}},
		"ErrBadDate":        {rosterHead + good + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,,2021-13-01\n", []string{"line 3: start_date: want a date as YYYY-MM-DD"}},
		"ErrFutureDate":     {rosterHead + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,,2027-01-01\n", []string{"line 2: start_date: is in the future"}},
		"ErrDuplicateID":    {rosterHead + good + "e1,bo@example.com,Bo,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 3: employee_id: duplicate of line 2"}},
		"ErrDuplicateEmail": {rosterHead + good + "e2,ANA@example.com,Ana R,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 3: email: same address as line 2"}},
		"ErrBadEmail":       {rosterHead + "e2,not-an-email,Bo,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 2: email: not a valid email address"}},
		"ErrEmailWithName":  {rosterHead + "e2,Bo <bo@example.com>,Bo,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 2: email"}},
		"ErrEmptyName":      {rosterHead + "e2,bo@example.com,,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 2: display_name"}},
		"ErrBadEmployeeID":  {rosterHead + "e 2,bo@example.com,Bo,Sales,EMEA,Lisbon,,2021-01-01\n", []string{"line 2: employee_id"}},
		"ErrUnknownManager": {rosterHead + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,e9,2021-01-01\n", []string{`line 2: manager_id: "e9" is not an employee`}},
		"ErrFieldCount":     {rosterHead + "e2,bo@example.com,Bo\n", []string{"line 2: row: 3 fields, the header has 8"}},
		"ErrSelfManaged":    {rosterHead + good + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,e2,2021-01-01\n", []string{`line 3: manager_id: "e2" manages themself`}},
		"ErrCycleOfTwo": {rosterHead + good + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,e3,2021-01-01\n" + "e3,cy@example.com,Cy,Sales,EMEA,Lisbon,e2,2021-01-01\n",
			[]string{`line 3: manager_id: reporting cycle "e2" (line 3) -> "e3" (line 4) -> "e2"`, `line 4: manager_id: reporting cycle "e2" (line 3) -> "e3" (line 4) -> "e2"`}},
		"ErrCycleOfThreeBelowATree": {rosterHead + good + "e2,bo@example.com,Bo,Sales,EMEA,Lisbon,e4,2021-01-01\n" + "e3,cy@example.com,Cy,Sales,EMEA,Lisbon,e2,2021-01-01\n" +
			"e4,di@example.com,Di,Sales,EMEA,Lisbon,e3,2021-01-01\n" + "e5,ed@example.com,Ed,Sales,EMEA,Lisbon,e3,2021-01-01\n" + "e6,fa@example.com,Fa,Sales,EMEA,Lisbon,e1,2021-01-01\n",
			[]string{`line 3: manager_id: reporting cycle "e2" (line 3) -> "e4" (line 5) -> "e3" (line 4) -> "e2"`, "line 4: manager_id: reporting cycle", "line 5: manager_id: reporting cycle"}},
		"ErrTooDeep": {rosterHead + deepLine(schemas.MaxManagerDepth+2), []string{
			fmt.Sprintf(`line %d: manager_id: %d managers above "d%d"`, schemas.MaxManagerDepth+3, schemas.MaxManagerDepth+1, schemas.MaxManagerDepth+1),
			fmt.Sprintf(`line %d: manager_id: %d managers above "d%d"`, schemas.MaxManagerDepth+2, schemas.MaxManagerDepth, schemas.MaxManagerDepth) + ",!"}},
		"ErrMissingTeam": {rosterHead + "e2,bo@example.com,Bo,Sales,,Lisbon,,2021-01-01\n", []string{"line 2: team"}},
		"ErrBareQuoteFirstField": {rosterHead + good + "e\"2,bo@example.com,Bo,Sales,EMEA,Lisbon,,2021-01-01\n" + "e3,bo@example.com,Bo,Sales,EMEA,x,,2021-01-01\n",
			[]string{`line 3: bare " in non-quoted-field`}},
		"ErrBareQuoteLaterField": {rosterHead + "e2,bo@example.com,B\"o,Sales,EMEA,Lisbon,,2021-01-01\n", []string{`line 2: bare " in non-quoted-field`}},
		"ErrBareQuoteOnly":       {rosterHead + "\"x\"y\n", []string{`line 2: extraneous or missing " in quoted-field`}},
		"ErrUnterminatedQuote":   {rosterHead + good + "\"e2,bo@example.com\n", []string{`line 3: extraneous or missing " in quoted-field`}},
		"ErrManyRows": {rosterHead + good + "x,bad,,,,,,\n" + "e3,c@example.com,C,Sales,EMEA,Lisbon,,yesterday\n",
			[]string{"line 3: email", "line 3: display_name", "line 3: department", "line 4: start_date"}},
	} {
		t.Run(name, func(t *testing.T) {
			rows, err := ingest.ParseRoster(strings.NewReader(tc.csv), today)
			var re *ingest.RosterError
			if !errors.As(err, &re) || rows != nil {
				t.Fatalf("ParseRoster = %v, %v; want a RosterError and no rows", rows, err)
			}
			for _, w := range tc.want {
				if absent, ok := strings.CutSuffix(w, ",!"); ok {
					if strings.Contains(err.Error(), absent) {
						t.Errorf("error says %q:\n%v", absent, err)
					}
					continue
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "example.com") {
				t.Errorf("error echoes an email address:\n%v", err)
			}
		})
	}
	rows, err := ingest.ParseRoster(strings.NewReader("\ufeff"+strings.ToUpper(rosterHead[:11])+rosterHead[11:]+good), today)
	if err != nil || len(rows) != 1 || rows[0].Email != "ana@example.com" || rows[0].Line != 2 {
		t.Fatalf("valid file with BOM and upper-case header: %+v %v", rows, err)
	}
}

// deepLine is a roster of n people, each managing the next: d0 at the top,
// d(n-1) with n-1 managers above.
func deepLine(n int) string {
	var b strings.Builder
	for i := range n {
		manager := ""
		if i > 0 {
			manager = fmt.Sprintf("d%d", i-1)
		}
		fmt.Fprintf(&b, "d%d,d%d@example.com,D %d,Eng,core,Berlin,%s,2021-01-01\n", i, i, i, manager)
	}
	return b.String()
}

// TestParseRosterDeepestLine: a line of exactly MaxManagerDepth managers
// above its last person is accepted; with cycles and self-management,
// nothing else in the file is reported as a hierarchy problem.
func TestParseRosterDeepestLine(t *testing.T) {
	rows, err := ingest.ParseRoster(strings.NewReader(rosterHead+deepLine(schemas.MaxManagerDepth+1)), today)
	if err != nil || len(rows) != schemas.MaxManagerDepth+1 {
		t.Fatalf("a line of %d managers: %d rows, %v", schemas.MaxManagerDepth, len(rows), err)
	}
	_, err = ingest.ParseRoster(strings.NewReader(rosterHead+
		"a,a@example.com,A,Eng,core,Berlin,b,2021-01-01\n"+
		"b,b@example.com,B,Eng,core,Berlin,a,2021-01-01\n"+
		"c,c@example.com,C,Eng,core,Berlin,a,2021-01-01\n"+ // below the cycle, not in it
		"d,d@example.com,D,Eng,core,Berlin,,2021-01-01\n"), today)
	var re *ingest.RosterError
	if !errors.As(err, &re) || len(re.Problems) != 2 || !strings.HasPrefix(re.Problems[0], "line 2: manager_id: reporting cycle") ||
		!strings.HasPrefix(re.Problems[1], "line 3: manager_id: reporting cycle") {
		t.Fatalf("a cycle of two with one below it: %v", err)
	}
}

func mustRoster(t *testing.T, csv string) []ingest.RosterRow {
	t.Helper()
	rows, err := ingest.ParseRoster(strings.NewReader(rosterHead+csv), today)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestImportRoster imports a roster, then a changed one: joiners, changes
// and leavers become events that carry no email, name or employee id.
func TestImportRoster(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	first := mustRoster(t, ""+
		"e1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"+
		"e2,bo@example.com,Bo Lind,Sales,EMEA,Lisbon,e1,2023-01-15\n"+
		"e3,cy@example.com,Cy Moe,Sales,EMEA,Lisbon,e1,2024-06-30\n")
	sum, err := e.admin.ImportRoster(ctx, "acme", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (ingest.RosterSummary{Joined: 3}) {
		t.Fatalf("first import %+v", sum)
	}
	again, err := e.admin.ImportRoster(ctx, "acme", first, nil)
	if err != nil || again != (ingest.RosterSummary{Unchanged: 3}) {
		t.Fatalf("same file again: %+v %v", again, err)
	}
	second := mustRoster(t, ""+
		"e1,ana.ruiz@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"+ // email only
		"e2,bo@example.com,Bo Lind,Sales,Americas,Lisbon,e1,2023-01-15\n"+ // team changed
		"e4,di@example.com,Di Park,People,People Ops,Remote,e1,2026-11-02\n") // new; e3 left
	var progressed bool
	sum, err = e.admin.ImportRoster(ctx, "acme", second, func(done, total int) { progressed = done == total })
	if err != nil {
		t.Fatal(err)
	}
	if sum != (ingest.RosterSummary{Joined: 1, Updated: 1, Left: 1, Unchanged: 1}) || !progressed {
		t.Fatalf("second import %+v (progress reported: %v)", sum, progressed)
	}
	people, err := e.admin.People(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if people["e1"].Email != "ana.ruiz@example.com" || people["e2"].Team != "Americas" || people["e3"].LeftOn != e.clock.Now().Format(schemas.DateLayout) {
		t.Fatalf("people bucket: %+v", people)
	}
	counts := map[schemas.EventType]int{}
	for _, typ := range []schemas.EventType{schemas.EmployeeJoinedType, schemas.EmployeeUpdatedType, schemas.EmployeeLeftType} {
		for _, m := range e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(typ)) {
			counts[typ]++
			for _, secret := range []string{"example.com", "Ana", "Bo Lind", `"e1"`, `"e2"`, `"e3"`} {
				if strings.Contains(string(m.Data()), secret) {
					t.Fatalf("roster event carries identity %q: %s", secret, m.Data())
				}
			}
		}
	}
	if counts[schemas.EmployeeJoinedType] != 4 || counts[schemas.EmployeeUpdatedType] != 1 || counts[schemas.EmployeeLeftType] != 1 {
		t.Fatalf("roster events %v", counts)
	}

	// The tree: joined and updated events carry the manager's person id.
	// A re-import that changes only a manager (e4 now reports to e2, who
	// is listed after e4) is an update.
	third := mustRoster(t, ""+
		"e1,ana.ruiz@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"+
		"e4,di@example.com,Di Park,People,People Ops,Remote,e2,2026-11-02\n"+
		"e2,bo@example.com,Bo Lind,Sales,Americas,Lisbon,e1,2023-01-15\n")
	if sum, err := e.admin.ImportRoster(ctx, "acme", third, nil); err != nil || sum != (ingest.RosterSummary{Updated: 1, Unchanged: 2}) {
		t.Fatalf("manager changed: %+v, %v", sum, err)
	}
	people, err = e.admin.People(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	pid := func(emp string) string { return people[emp].PersonID }
	var managers []string // person id: manager person id, event by event
	for _, m := range e.streamMsgs(t, schemas.EventStream, schemas.SubjectPrefix+".acme.>") {
		env, err := schemas.DecodeEnvelope(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != schemas.EmployeeJoinedType && env.Type != schemas.EmployeeUpdatedType {
			continue
		}
		p, err := schemas.DecodePayload[schemas.EmployeeJoined](env, env.Type)
		if err != nil {
			t.Fatal(err)
		}
		managers = append(managers, p.PersonID+":"+p.ManagerPersonID)
	}
	want := []string{pid("e1") + ":", pid("e2") + ":" + pid("e1"), people["e3"].PersonID + ":" + pid("e1"), // first import
		pid("e2") + ":" + pid("e1"), pid("e4") + ":" + pid("e1"), // second
		pid("e4") + ":" + pid("e2")} // third
	if !slices.Equal(managers, want) {
		t.Fatalf("roster events' person:manager\n%v\nwant\n%v", managers, want)
	}
	if people["e4"].ManagerPersonID != pid("e2") {
		t.Fatalf("people bucket: e4's manager %q, want e2's person id", people["e4"].ManagerPersonID)
	}
}
