package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/ingest"
)

// FuzzDecodeSubmitRequest feeds arbitrary bodies to the submission decoder:
// it must never panic, and what it accepts must be complete and survive a
// round trip unchanged.
func FuzzDecodeSubmitRequest(f *testing.F) {
	for _, seed := range []string{
		`{"token":"abc","answers":{"q1":4,"enps":10}}`,
		`{"token":"abc","answers":{}}`,
		`{"token":"","answers":{"q":1}}`,
		`{"token":"abc","answers":{"q":1},"x":1}`,
		`{"token":"abc","answers":{"q":1}} {}`,
		`{"answers":{"q":99999999999999999999}}`,
		`{"token":"abc","answers":{"q":1,"q":2}}`,
		`{"token":"abc","Token":"abd","answers":{"q":1}}`,
		`{"token":"abc","answers":{"q":1},"comments":{"c":"x","c":"y"}}`,
		`[]`, `null`, ``, `{`, `"\u0000"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ingest.DecodeSubmitRequest(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if req.Token == "" || req.Answers == nil {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := ingest.DecodeSubmitRequest(again)
		if err != nil || !reflect.DeepEqual(req, req2) {
			t.Fatalf("round trip: %+v != %+v (%v)", req, req2, err)
		}
	})
}

// problemLine is how every problem of a CSV file begins.
var problemLine = regexp.MustCompile(`^line [1-9][0-9]*: `)

// FuzzParseRoster feeds arbitrary files to the roster reader (the admin
// API's POST /roster and `roster import`): it must never panic, every
// problem names a line, and what it accepts is valid: data rows in file
// order, unique ids.
func FuzzParseRoster(f *testing.F) {
	good := "e1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n"
	for _, seed := range []string{
		rosterHead + good,
		rosterHead + good + "e2,bo@example.com,Bo Lind,Sales,EMEA,Lisbon,e1,2023-01-15\n",
		"\ufeff" + strings.ToUpper(rosterHead) + good,
		rosterHead + "e\"1,ana@example.com,Ana Ruiz,Engineering,Platform,Berlin,,2021-04-01\n", // once panicked: a bare quote in the first field
		rosterHead + "\"e1,ana@example.com\n",
		rosterHead + "\"e1\"x,ana@example.com,Ana,E,P,B,,2021-04-01\n",
		rosterHead + "\"\"\n\n,\n",
		rosterHead + "e1,bo@example.com,Bo\n",
		"\"", "", "employee_id\n", ",,,\n\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		rows, err := ingest.ParseRoster(bytes.NewReader(file), today)
		if err != nil {
			var re *ingest.RosterError
			if !errors.As(err, &re) || len(re.Problems) == 0 || rows != nil {
				t.Fatalf("ParseRoster = %v, %v; want a RosterError and no rows", rows, err)
			}
			for _, p := range re.Problems {
				if !problemLine.MatchString(p) {
					t.Fatalf("problem names no line: %q", p)
				}
			}
			return
		}
		ids := map[string]bool{}
		for i, r := range rows {
			if r.Line < 2 || (i > 0 && r.Line <= rows[i-1].Line) || ids[r.EmployeeID] || r.EmployeeID == "" || r.Department == "" {
				t.Fatalf("accepted row %d: %+v", i, r)
			}
			ids[r.EmployeeID] = true
		}
	})
}

// FuzzParseCohorts feeds arbitrary files to the cohorts reader (`invite
// --cohorts`): it must never panic, every problem names a line, and every
// cohort it accepts is valid.
func FuzzParseCohorts(f *testing.F) {
	example, err := os.ReadFile("../deploy/examples/cohorts.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		cohortsHead + "Engineering,Platform,Berlin,1-2y\n",
		cohortsHead + "E\"ng,Platform,Berlin,1-2y\n", // once panicked: a bare quote in the first field
		cohortsHead + "\"Eng,Platform\n",
		cohortsHead + "Eng,Platform\n",
		"\ufeff" + cohortsHead + "\"E,ng\",P,B,0-1y\n",
		"\"", "", "department\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		cohorts, err := ingest.ParseCohorts(bytes.NewReader(file))
		if err != nil {
			if cohorts != nil {
				t.Fatalf("ParseCohorts returned %d cohorts with %v", len(cohorts), err)
			}
			for _, p := range strings.Split(err.Error(), "\n") {
				if !problemLine.MatchString(p) && !strings.HasPrefix(p, "cohort.") {
					t.Fatalf("problem names no line: %q", p)
				}
			}
			return
		}
		if len(cohorts) == 0 {
			t.Fatal("accepted a file without invitees")
		}
		for _, c := range cohorts {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted %+v: %v", c, err)
			}
		}
	})
}

// FuzzParseSurveyFile feeds arbitrary files to the survey file reader
// (YAML or JSON, `survey publish`): it must never panic, a rejection lists
// its problems, and a survey it accepts is valid.
func FuzzParseSurveyFile(f *testing.F) {
	for _, name := range []string{"pulse-survey.yaml", "engagement-survey.yaml", "pulse-survey.json", "leadership-pulse.yaml"} {
		data, err := os.ReadFile("../deploy/examples/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	head := "survey_id: pulse\ntitle: Pulse\nquestions:\n"
	for _, seed := range []string{
		head + "  - bank: autonomy\n  - id: q2\n    text: Hi\n    dimension: trust\n    optional: true\n",
		head + "  - bank: autonomy\n    optional: [1, {a: b}]\n",
		head + "  - &a {bank: enps}\n  - *a\n",
		head + "  - \n  - []\n  - {id: }\n",
		`{"survey_id":"p","title":"P","questions":[{"bank":"enps"},{"id":"x","text":"t","dimension":"trust"}]}`,
		"survey_id: [", "- a\n", "", "---\n...\n", "a: &x [*x]\n", "questions: !!binary aGk=\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		s, err := ingest.ParseSurveyFile("s.yaml", file)
		if err != nil {
			var fe *ingest.SurveyFileError
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("ParseSurveyFile = %v; want a SurveyFileError with problems", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid survey %+v: %v", s, err)
		}
	})
}
