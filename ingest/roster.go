package ingest

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// RosterColumns are the columns of a roster CSV file, in any order.
var RosterColumns = []string{"employee_id", "email", "display_name", "department", "team", "location", "manager_id", "start_date"}

// RosterRow is one validated row of a roster file.
type RosterRow struct {
	Line                                  int
	EmployeeID, Email, Name               string
	Department, Team, Location, ManagerID string
	StartDate                             string
}

// RosterError lists every bad row of a roster file. A file with any bad row
// imports nothing.
type RosterError struct {
	Problems []string // "line N: field: reason"
}

func (e *RosterError) Error() string {
	return fmt.Sprintf("roster has %d problem(s); nothing was imported:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

var employeeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseRoster reads and validates a roster CSV: a header naming every
// column of RosterColumns, then one employee per row. It checks every row
// and returns all problems at once, each with its line number; emails and
// names are never echoed in them. today bounds start dates.
func ParseRoster(r io.Reader, today time.Time) ([]RosterRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &RosterError{Problems: []string{"line 1: the file is empty; want a header " + strings.Join(RosterColumns, ",")}}
	}
	if err != nil {
		return nil, &RosterError{Problems: []string{"line 1: " + csvProblem(err)}}
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	var problems []string
	for _, c := range RosterColumns {
		if _, ok := col[c]; !ok {
			problems = append(problems, fmt.Sprintf("line 1: missing column %q", c))
		}
	}
	if len(problems) > 0 {
		return nil, &RosterError{Problems: problems}
	}
	var rows []RosterRow
	ids, emails := map[string]int{}, map[string]int{}
	err = readRecords(cr, func(line int, problem string) {
		problems = append(problems, fmt.Sprintf("line %d: %s", line, problem))
	}, func(line int, rec []string) {
		get := func(c string) string {
			if i := col[c]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := RosterRow{Line: line, EmployeeID: get("employee_id"), Email: strings.ToLower(get("email")), Name: get("display_name"),
			Department: get("department"), Team: get("team"), Location: get("location"), ManagerID: get("manager_id"), StartDate: get("start_date")}
		bad := func(field, reason string) {
			problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, field, reason))
		}
		if len(rec) != len(head) {
			bad("row", fmt.Sprintf("%d fields, the header has %d", len(rec), len(head)))
			return
		}
		if !employeeIDPattern.MatchString(row.EmployeeID) {
			bad("employee_id", "want 1-64 letters, digits, '-' or '_'")
		} else if first, dup := ids[row.EmployeeID]; dup {
			bad("employee_id", fmt.Sprintf("duplicate of line %d", first))
		} else {
			ids[row.EmployeeID] = line
		}
		if a, err := mail.ParseAddress(row.Email); err != nil || a.Address != row.Email || !strings.Contains(row.Email[strings.IndexByte(row.Email, '@')+1:], ".") {
			bad("email", "not a valid email address")
		} else if first, dup := emails[row.Email]; dup {
			bad("email", fmt.Sprintf("same address as line %d", first))
		} else {
			emails[row.Email] = line
		}
		if row.Name == "" || len(row.Name) > 200 {
			bad("display_name", "want 1-200 characters")
		}
		for _, f := range []struct{ name, v string }{{"department", row.Department}, {"team", row.Team}, {"location", row.Location}} {
			if f.v == "" || len(f.v) > schemas.MaxAttrLen || schemas.HasControl(f.v) {
				bad(f.name, fmt.Sprintf("want 1-%d characters, no control characters", schemas.MaxAttrLen))
			}
		}
		if row.ManagerID != "" && !employeeIDPattern.MatchString(row.ManagerID) {
			bad("manager_id", "want an employee_id or nothing")
		}
		if d, err := time.Parse(schemas.DateLayout, row.StartDate); err != nil {
			bad("start_date", "want a date as YYYY-MM-DD")
		} else if d.After(today) {
			bad("start_date", "is in the future")
		}
		rows = append(rows, row)
	})
	if err != nil {
		return nil, fmt.Errorf("roster: read: %w", err)
	}
	for _, r := range rows {
		if _, ok := ids[r.ManagerID]; r.ManagerID != "" && !ok && employeeIDPattern.MatchString(r.ManagerID) {
			problems = append(problems, fmt.Sprintf("line %d: manager_id: %q is not an employee of this file", r.Line, r.ManagerID))
		}
	}
	var unique []RosterRow // the first row of each employee id
	for _, r := range rows {
		if ids[r.EmployeeID] == r.Line {
			unique = append(unique, r)
		}
	}
	problems = append(problems, hierarchyProblems(unique)...)
	if len(problems) > 0 {
		return nil, &RosterError{Problems: problems}
	}
	if len(rows) == 0 {
		return nil, &RosterError{Problems: []string{"line 2: no employees after the header"}}
	}
	return rows, nil
}

func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// readRecords reads the records of cr that are left, calling row with each
// one and its line, or bad with a malformed one's line (from its
// csv.ParseError: FieldPos panics for a record without fields, as a bare
// quote in its first field leaves it) and what is wrong with it. It returns
// nil at the end, or the error of a reader that failed.
func readRecords(cr *csv.Reader, bad func(line int, problem string), row func(line int, rec []string)) error {
	for {
		rec, err := cr.Read()
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &pe):
			bad(pe.Line, pe.Err.Error())
		case err != nil:
			return err
		default:
			line, _ := cr.FieldPos(0) // a record read without error has a field
			row(line, rec)
		}
	}
}

// RosterSummary counts what an import changed.
type RosterSummary struct {
	Joined, Updated, Left, Unchanged int
}

// ImportRoster makes the people bucket match rows: new employees join,
// changed ones (attributes, dates or manager) are updated, and those
// missing from rows leave (today). Joined and updated events carry the
// manager's person id, never an employee id.
// Each change is an event; emails and names stay in the bucket. progress,
// if set, is called every so often with rows done and total. Running it
// again with the same rows changes nothing, so an import cut short is
// finished by running it again.
func (a *Admin) ImportRoster(ctx context.Context, org string, rows []RosterRow, progress func(done, total int)) (RosterSummary, error) {
	var sum RosterSummary
	if err := checkOrg(org); err != nil {
		return sum, err
	}
	kv, err := a.js.KeyValue(ctx, schemas.PeopleBucket)
	if err != nil {
		return sum, fmt.Errorf("roster: people bucket: %w", err)
	}
	existing, err := loadPeople(ctx, kv, org)
	if err != nil {
		return sum, err
	}
	today := a.now().UTC().Format(schemas.DateLayout)
	// Person ids first, so that each row's manager has one, wherever in
	// the file the manager is.
	personIDs := make(map[string]string, len(rows))
	for _, r := range rows {
		if old, ok := existing[r.EmployeeID]; ok {
			personIDs[r.EmployeeID] = old.PersonID // rejoining keeps the person id
		} else {
			personIDs[r.EmployeeID] = uuid.NewString()
		}
	}
	seen := map[string]bool{}
	for i, r := range rows {
		seen[r.EmployeeID] = true
		p := schemas.Person{PersonID: personIDs[r.EmployeeID], EmployeeID: r.EmployeeID, Email: r.Email, Name: r.Name, Department: r.Department,
			Team: r.Team, Location: r.Location, ManagerID: r.ManagerID, StartDate: r.StartDate}
		if r.ManagerID != "" {
			p.ManagerPersonID = personIDs[r.ManagerID]
		}
		old, ok := existing[r.EmployeeID]
		var ev schemas.EventType
		switch {
		case !ok || old.LeftOn != "":
			ev = schemas.EmployeeJoinedType
			sum.Joined++
		case old.Department != p.Department || old.Team != p.Team || old.Location != p.Location || old.StartDate != p.StartDate ||
			old.ManagerPersonID != p.ManagerPersonID:
			ev = schemas.EmployeeUpdatedType
			sum.Updated++
		default:
			if p != old { // only identity fields changed: no event
				if err := putPerson(ctx, kv, org, p); err != nil {
					return sum, err
				}
			}
			sum.Unchanged++
			continue
		}
		if err := putPerson(ctx, kv, org, p); err != nil {
			return sum, err
		}
		if err := a.publishAndWait(ctx, ev, org, schemas.EmployeeJoined{PersonID: p.PersonID, Department: p.Department,
			Team: p.Team, Location: p.Location, StartDate: p.StartDate, ManagerPersonID: p.ManagerPersonID}); err != nil {
			return sum, err
		}
		if progress != nil && (i+1)%500 == 0 {
			progress(i+1, len(rows))
		}
	}
	for id, p := range existing {
		if seen[id] || p.LeftOn != "" {
			continue
		}
		p.LeftOn = today
		if err := putPerson(ctx, kv, org, p); err != nil {
			return sum, err
		}
		if err := a.publishAndWait(ctx, schemas.EmployeeLeftType, org, schemas.EmployeeLeft{PersonID: p.PersonID, LeftOn: today}); err != nil {
			return sum, err
		}
		sum.Left++
	}
	if progress != nil {
		progress(len(rows), len(rows))
	}
	return sum, nil
}

// People returns an organisation's roster by employee id, leavers included.
func (a *Admin) People(ctx context.Context, org string) (map[string]schemas.Person, error) {
	kv, err := a.js.KeyValue(ctx, schemas.PeopleBucket)
	if err != nil {
		return nil, fmt.Errorf("roster: people bucket: %w", err)
	}
	return loadPeople(ctx, kv, org)
}

func loadPeople(ctx context.Context, kv jetstream.KeyValue, org string) (map[string]schemas.Person, error) {
	entries, err := readBucket(ctx, kv, org+".*")
	if err != nil {
		return nil, fmt.Errorf("roster: read people: %w", err)
	}
	out := make(map[string]schemas.Person, len(entries))
	for _, v := range entries {
		var p schemas.Person
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, fmt.Errorf("roster: corrupt person entry: %w", err)
		}
		out[p.EmployeeID] = p
	}
	return out, nil
}

func putPerson(ctx context.Context, kv jetstream.KeyValue, org string, p schemas.Person) error {
	val, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, schemas.PersonKey(org, p.EmployeeID), val); err != nil {
		return fmt.Errorf("roster: store person: %w", err)
	}
	return nil
}
