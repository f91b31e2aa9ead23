package schemas

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustEnvelope(t *testing.T, typ EventType, p any) Envelope {
	t.Helper()
	e, err := NewEnvelope(typ, "acme", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecodeEnvelope(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		in := mustEnvelope(t, WaveClosedType, WaveClosed{WaveID: "w1"})
		data, err := in.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		if out.ID != in.ID || out.Type != in.Type || out.Version != 1 || out.OrgID != "acme" {
			t.Fatalf("round trip changed the envelope: %+v", out)
		}
		p, err := DecodePayload[WaveClosed](out, WaveClosedType)
		if err != nil || p.WaveID != "w1" {
			t.Fatalf("payload = %+v, %v", p, err)
		}
	})
	bad := func(mut func(map[string]any)) []byte {
		e := mustEnvelope(t, WaveClosedType, WaveClosed{WaveID: "w1"})
		data, _ := e.Marshal()
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		mut(m)
		out, _ := json.Marshal(m)
		return out
	}
	for name, tc := range map[string]struct {
		data    []byte
		unknown bool
	}{
		"ErrUnknownType":    {bad(func(m map[string]any) { m["type"] = "EmployeeFired" }), true},
		"ErrVersionTooNew":  {bad(func(m map[string]any) { m["version"] = 2 }), true},
		"ErrVersionZero":    {bad(func(m map[string]any) { m["version"] = 0 }), true},
		"ErrUnknownField":   {bad(func(m map[string]any) { m["email"] = "a@b.c" }), false},
		"ErrMissingOrg":     {bad(func(m map[string]any) { delete(m, "org") }), false},
		"ErrMissingPayload": {bad(func(m map[string]any) { delete(m, "payload") }), false},
		"ErrNotJSON":        {[]byte("{"), false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeEnvelope(tc.data)
			if err == nil {
				t.Fatal("decoded, want an error")
			}
			if got := errors.Is(err, ErrUnknownEvent); got != tc.unknown {
				t.Fatalf("errors.Is(ErrUnknownEvent) = %v, want %v (%v)", got, tc.unknown, err)
			}
		})
	}
	t.Run("ErrTrailingData", func(t *testing.T) {
		e := mustEnvelope(t, WaveClosedType, WaveClosed{WaveID: "w1"})
		data, _ := e.Marshal()
		if _, err := DecodeEnvelope(append(data, []byte(`{"id":1}`)...)); err == nil {
			t.Fatal("an envelope followed by more JSON decoded")
		}
	})
	t.Run("CaseFoldedNames", func(t *testing.T) {
		// As encoding/json did: a field's name matches whatever its case.
		e := mustEnvelope(t, WaveClosedType, WaveClosed{WaveID: "w1"})
		data, _ := e.Marshal()
		data = []byte(strings.Replace(string(data), `"org"`, `"ORG"`, 1))
		out, err := DecodeEnvelope(data)
		if err != nil || out.OrgID != "acme" {
			t.Fatalf("ORG for org: %+v, %v", out, err)
		}
	})
	t.Run("ErrPayloadUnknownField", func(t *testing.T) {
		e := mustEnvelope(t, WaveClosedType, map[string]string{"wave_id": "w1", "employee_id": "e7"})
		if _, err := DecodePayload[WaveClosed](e, WaveClosedType); err == nil {
			t.Fatal("payload with an unknown field decoded")
		}
	})
}

// TestUpcast registers a version 2 of an event whose upcaster renames a
// field, and replays a version 1 event through it.
func TestUpcast(t *testing.T) {
	const typ EventType = "TestRenamed"
	registry[typ] = eventSpec{current: 2, upcasters: map[int]Upcaster{
		1: func(p json.RawMessage) (json.RawMessage, error) {
			var v1 struct {
				Wave string `json:"wave"`
			}
			if err := json.Unmarshal(p, &v1); err != nil {
				return nil, err
			}
			return json.Marshal(WaveClosed{WaveID: v1.Wave})
		},
	}}
	t.Cleanup(func() { delete(registry, typ) })

	old := `{"id":"5b0b8f3c-50a5-4f3a-9b53-8a0e0f6a5a11","type":"TestRenamed","version":1,"org":"acme",` +
		`"time":"2026-01-01T00:00:00Z","payload":{"wave":"w9"}}`
	e, err := DecodeEnvelope([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != 2 {
		t.Fatalf("version after upcast = %d, want 2", e.Version)
	}
	p, err := DecodePayload[WaveClosed](e, typ)
	if err != nil || p.WaveID != "w9" {
		t.Fatalf("upcast payload = %+v, %v", p, err)
	}
}

func validSurvey() SurveyPublished {
	return SurveyPublished{SurveyID: "pulse", Title: "Pulse", Questions: []Question{
		{ID: "q1", Text: "I trust my manager.", Dimension: Trust},
		{ID: "nps", Text: "Recommend us?", Dimension: ENPS},
	}}
}

func TestSurveyValidate(t *testing.T) {
	if err := validSurvey().Validate(); err != nil {
		t.Fatalf("valid survey rejected: %v", err)
	}
	for name, tc := range map[string]struct {
		mut  func(*SurveyPublished)
		want string
	}{
		"ErrSurveyID":      {func(s *SurveyPublished) { s.SurveyID = "Pulse Survey" }, "survey_id"},
		"ErrTitle":         {func(s *SurveyPublished) { s.Title = "" }, "title"},
		"ErrNoQuestions":   {func(s *SurveyPublished) { s.Questions = nil }, "questions: want 1-40"},
		"ErrDuplicateID":   {func(s *SurveyPublished) { s.Questions[1].ID = "q1" }, "questions[1].id: \"q1\": duplicate"},
		"ErrDimension":     {func(s *SurveyPublished) { s.Questions[0].Dimension = "happiness" }, "questions[0].dimension"},
		"ErrEmptyText":     {func(s *SurveyPublished) { s.Questions[1].Text = "" }, "questions[1].text"},
		"ErrQuestionIDDot": {func(s *SurveyPublished) { s.Questions[0].ID = "a.b" }, "questions[0].id"},
	} {
		t.Run(name, func(t *testing.T) {
			s := validSurvey()
			s.Questions = append([]Question(nil), s.Questions...)
			tc.mut(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, ok := range []string{"acme", "a", "w-2026_11", "0"} {
		if !ValidID(ok) {
			t.Errorf("ValidID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "Acme", "a.b", "a*", ">", "-a", strings.Repeat("a", 65), "a b"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

// updatesWhereDiffers reports whether s is a mutation that sets a column to
// a constant only in the rows where it differs, which a second run leaves
// alone.
func updatesWhereDiffers(s string) bool {
	m := updateWhereDiffers.FindStringSubmatch(s)
	return m != nil && m[1] == m[3] && m[2] == m[4]
}

var updateWhereDiffers = regexp.MustCompile(`^ALTER TABLE \w+ UPDATE (\w+) = (\w+) WHERE (\w+) != (\w+)$`)

func TestMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d; versions must run 1, 2, 3 ...", i, m.Version)
		}
		if len(m.Statements) == 0 {
			t.Errorf("migration %d_%s has no statements", m.Version, m.Name)
		}
		for _, s := range m.Statements {
			// Idempotent: created only if missing, copied only if absent, or
			// a column set to a value only where it differs, or a column
			// added only while missing (Migrate checks system.columns).
			_, _, adds := AddedColumn(s)
			if !strings.Contains(s, "IF NOT EXISTS") && !(strings.HasPrefix(s, "INSERT INTO") && strings.Contains(s, "NOT IN (SELECT")) &&
				!updatesWhereDiffers(s) && !adds {
				t.Errorf("migration %d_%s: statement is not idempotent: %s", m.Version, m.Name, s)
			}
		}
	}
}

// BenchmarkDecodeResponse decodes a response event of ten answers, as the
// projector does for each: the envelope, then its payload.
func BenchmarkDecodeResponse(b *testing.B) {
	var answers []Answer
	for i := range 10 {
		answers = append(answers, Answer{QuestionID: "q" + string(rune('0'+i)), Dimension: Trust, Value: 1 + i%5})
	}
	e, err := NewEnvelope(ResponseSubmittedType, "acme", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), ResponseSubmitted{
		SurveyID: "s1", WaveID: "w1", Date: "2026-11-02",
		Cohort: Cohort{Department: "Engineering", Team: "Platform", Location: "Berlin", TenureBand: "1-2y"}, Answers: answers})
	if err != nil {
		b.Fatal(err)
	}
	data, err := e.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		env, err := DecodeEnvelope(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodePayload[ResponseSubmitted](env, ResponseSubmittedType); err != nil {
			b.Fatal(err)
		}
	}
}
