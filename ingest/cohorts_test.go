package ingest_test

import (
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

const cohortsHead = "department,team,location,tenure_band\n"

func TestParseCohorts(t *testing.T) {
	good := "Engineering,Platform,Berlin,1-2y\n"
	t.Run("OK", func(t *testing.T) {
		got, err := ingest.ParseCohorts(strings.NewReader("\ufeff" + cohortsHead + good + "Sales,EMEA,Lisbon,0-1y\n"))
		want := []schemas.Cohort{testCohort, {Department: "Sales", Team: "EMEA", Location: "Lisbon", TenureBand: "0-1y"}}
		if err != nil || len(got) != 2 || !got[0].Equal(want[0]) || !got[1].Equal(want[1]) {
			t.Fatalf("ParseCohorts = %+v, %v", got, err)
		}
	})
	for name, tc := range map[string]struct {
		csv  string
		want []string // each must appear in the error
	}{
		"ErrEmptyFile":           {"", []string{"line 1: the file is empty"}},
		"ErrHeader":              {"department,team,location,tenure\n" + good, []string{"line 1: header must be department,team,location,tenure_band"}},
		"ErrHeaderBareQuote":     {"depa\"rtment,team,location,tenure_band\n", []string{`line 1: header: bare " in non-quoted-field`}},
		"ErrHeaderOnly":          {cohortsHead, []string{"no invitees"}},
		"ErrBareQuoteFirstField": {cohortsHead + good + "E\"ng,Platform,Berlin,1-2y\n" + good, []string{`line 3: bare " in non-quoted-field`}},
		"ErrUnterminatedQuote":   {cohortsHead + good + "\"Eng,Platform\n", []string{`line 3: extraneous or missing " in quoted-field`}},
		"ErrFieldCount":          {cohortsHead + good + "Eng,Platform\n", []string{"line 3: wrong number of fields"}},
		"ErrEmptyValue":          {cohortsHead + "Eng,,Berlin,1-2y\n" + "Eng,P,Berlin,\n", []string{"line 2: cohort.team", "line 3: cohort.tenure_band"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ingest.ParseCohorts(strings.NewReader(tc.csv))
			if err == nil || got != nil {
				t.Fatalf("ParseCohorts = %+v, %v; want an error and no cohorts", got, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
