package ingest_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

func TestParseSurveyFile(t *testing.T) {
	for _, f := range []string{"pulse-survey.yaml", "engagement-survey.yaml", "pulse-survey.json", "leadership-pulse.yaml"} {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile("../deploy/examples/" + f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ingest.ParseSurveyFile(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil || len(s.Questions) < 5 || len(s.Questions) > 12 {
				t.Fatalf("%d questions, %v", len(s.Questions), err)
			}
		})
	}
	data, _ := os.ReadFile("../deploy/examples/engagement-survey.yaml")
	s, _ := ingest.ParseSurveyFile("e", data)
	engagement := 0
	for _, q := range s.Questions {
		if q.Dimension == schemas.Engagement {
			engagement++
		}
	}
	if engagement != 5 {
		t.Errorf("engagement-index expanded to %d items, want 5", engagement)
	}
	yamlSurvey, _ := os.ReadFile("../deploy/examples/pulse-survey.yaml")
	jsonSurvey, _ := os.ReadFile("../deploy/examples/pulse-survey.json")
	a, _ := ingest.ParseSurveyFile("y", yamlSurvey)
	b, _ := ingest.ParseSurveyFile("j", jsonSurvey)
	if !slices.Equal(a.Questions, b.Questions) {
		t.Errorf("the YAML and JSON examples differ: %+v vs %+v", a.Questions, b.Questions)
	}
}

func TestParseSurveyFileBadInput(t *testing.T) {
	head := "survey_id: pulse\ntitle: Pulse\nquestions:\n"
	for name, tc := range map[string]struct {
		yaml string
		want []string
	}{
		"ErrEmpty":            {"", []string{"line 1: the file is empty"}},
		"ErrNotYAML":          {"survey_id: [", []string{"line"}},
		"ErrNotMapping":       {"- a\n- b\n", []string{"line 1: want a mapping"}},
		"ErrUnknownTop":       {head + "  - bank: autonomy\nowner: me\n", []string{"line 5: owner: unknown field"}},
		"ErrBadDimension":     {head + "  - bank: autonomy\n  - id: q2\n    text: Hi\n    dimension: happiness\n", []string{`line 5: questions[1].dimension: "happiness"`}},
		"ErrUnknownField":     {head + "  - id: q1\n    text: Hi\n    dimenson: trust\n", []string{"line 6: dimenson: unknown field", "line 4: questions[0].dimension"}},
		"ErrDuplicateID":      {head + "  - bank: autonomy\n  - bank: autonomy\n", []string{`line 5: questions[1].id: "autonomy": duplicate`}},
		"ErrUnknownBank":      {head + "  - bank: happiness\n", []string{`line 4: bank: "happiness" is not in the question bank`}},
		"ErrBankWithText":     {head + "  - bank: autonomy\n    text: mine\n", []string{"line 4: bank: a bank question takes no"}},
		"ErrMissingTitle":     {"survey_id: pulse\nquestions:\n  - bank: autonomy\n", []string{"line 1: title: required"}},
		"ErrBadSurveyID":      {"survey_id: Pulse Survey\ntitle: P\nquestions:\n  - bank: enps\n", []string{`line 1: survey_id: "Pulse Survey"`}},
		"ErrQuestionsNotList": {"survey_id: p\ntitle: P\nquestions: many\n", []string{"line 3: questions: want a list"}},
		"ErrOptionalNotBool":  {head + "  - bank: enps\n    optional: maybe\n", []string{"line 5: optional: want true or false"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ingest.ParseSurveyFile("s.yaml", []byte(tc.yaml))
			var fe *ingest.SurveyFileError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseSurveyFile = %v; want a SurveyFileError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
