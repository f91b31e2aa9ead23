package ingest

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/trustpulse/trustpulse/schemas"
)

// Survey files are YAML (JSON is valid YAML too):
//
//	survey_id: pulse
//	title: Trust and autonomy pulse
//	questions:
//	  - bank: clear-expectations        # a question of the built-in bank
//	  - bank: engagement-index          # the five engagement index items
//	  - id: rituals                     # a question of one's own
//	    text: Our team rituals help us decide quickly.
//	    dimension: empowerment
//	    driver: rituals
//	    optional: true
//
// Every problem is reported with its line and field.

// SurveyFileError lists the problems of a survey file.
type SurveyFileError struct {
	File     string
	Problems []string // "line N: field: reason"
}

func (e *SurveyFileError) Error() string {
	return fmt.Sprintf("%s has %d problem(s):\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// ParseSurveyFile reads a survey definition from YAML or JSON.
func ParseSurveyFile(name string, data []byte) (schemas.SurveyPublished, error) {
	var s schemas.SurveyPublished
	fail := func(problems ...string) (schemas.SurveyPublished, error) {
		return schemas.SurveyPublished{}, &SurveyFileError{File: name, Problems: problems}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fail(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return fail("line 1: the file is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fail(fmt.Sprintf("line %d: want a mapping with survey_id, title and questions", root.Line))
	}
	lines := map[string]int{"": root.Line}
	var problems []string
	bad := func(line int, field, msg string) {
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, field, msg))
	}
	var qnodes []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		lines[k.Value] = v.Line
		switch k.Value {
		case "survey_id":
			s.SurveyID = v.Value
		case "title":
			s.Title = v.Value
		case "questions":
			if v.Kind != yaml.SequenceNode {
				bad(v.Line, "questions", "want a list")
				continue
			}
			qnodes = v.Content
		default:
			bad(k.Line, k.Value, "unknown field (want survey_id, title, questions)")
		}
	}
	for _, qn := range qnodes {
		qs, qproblems := parseQuestion(qn)
		problems = append(problems, qproblems...)
		for _, q := range qs {
			lines[fmt.Sprintf("questions[%d]", len(s.Questions))] = qn.Line
			s.Questions = append(s.Questions, q)
		}
	}
	for _, p := range s.Problems() {
		line, ok := lines[p.Path]
		if !ok { // a field of a question: its question's line
			line, ok = lines[p.Path[:max(strings.IndexByte(p.Path, '.'), 0)]]
		}
		if !ok {
			line = lines[""]
		}
		bad(line, p.Path, p.Msg)
	}
	if len(problems) > 0 {
		return fail(problems...)
	}
	return s, nil
}

// parseQuestion reads one item of the questions list: a bank reference
// (with an optional "optional") or a question of one's own.
func parseQuestion(n *yaml.Node) ([]schemas.Question, []string) {
	var problems []string
	if n.Kind != yaml.MappingNode {
		return nil, []string{fmt.Sprintf("line %d: question: want a mapping", n.Line)}
	}
	var q schemas.Question
	var bank string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "bank":
			bank = v.Value
		case "id":
			q.ID = v.Value
		case "text":
			q.Text = v.Value
		case "dimension":
			q.Dimension = schemas.Dimension(v.Value)
		case "driver":
			q.Driver = v.Value
		case "optional":
			if err := v.Decode(&q.Optional); err != nil {
				problems = append(problems, fmt.Sprintf("line %d: optional: want true or false", v.Line))
			}
		default:
			problems = append(problems, fmt.Sprintf("line %d: %s: unknown field (want bank, or id, text, dimension, driver, optional)", k.Line, k.Value))
		}
	}
	if bank == "" {
		return []schemas.Question{q}, problems
	}
	items, ok := schemas.BankItems(bank)
	if !ok {
		return nil, append(problems, fmt.Sprintf("line %d: bank: %q is not in the question bank", n.Line, bank))
	}
	if q.ID != "" || q.Text != "" || q.Dimension != "" || q.Driver != "" {
		problems = append(problems, fmt.Sprintf("line %d: bank: a bank question takes no id, text, dimension or driver of its own", n.Line))
	}
	for i := range items {
		items[i].Optional = items[i].Optional || q.Optional
	}
	return items, problems
}
