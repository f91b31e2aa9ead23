package schemas

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestCommentSubmitted round-trips a comment event and checks that it names
// nothing of a response: no response id, no sequence, no answers.
func TestCommentSubmitted(t *testing.T) {
	c := CommentSubmitted{SurveyID: "pulse", WaveID: "w1", QuestionID: "better", Text: "more focus time",
		Cohort: Cohort{Department: "Sales", Team: "East", Location: "Remote", TenureBand: "1-2y"}, Date: "2026-11-02"}
	in := mustEnvelope(t, CommentSubmittedType, c)
	data, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayload[CommentSubmitted](out, CommentSubmittedType)
	if err != nil || !reflect.DeepEqual(got, c) || out.Version != 1 {
		t.Fatalf("round trip: %+v v%d, %v", got, out.Version, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out.Payload, &fields); err != nil {
		t.Fatal(err)
	}
	if keys, want := slices.Sorted(maps.Keys(fields)), []string{"cohort", "date", "question_id", "survey_id", "text", "wave_id"}; !slices.Equal(keys, want) {
		t.Fatalf("CommentSubmitted fields %v, want exactly %v", keys, want)
	}
	t.Run("ErrResponseID", func(t *testing.T) {
		e := mustEnvelope(t, CommentSubmittedType, map[string]any{"wave_id": "w1", "response_id": "5b0b8f3c-50a5-4f3a-9b53-8a0e0f6a5a11"})
		if _, err := DecodePayload[CommentSubmitted](e, CommentSubmittedType); err == nil {
			t.Fatal("a comment naming a response decoded")
		}
	})
}

// TestResponseSubmittedUpcast replays a version 1 ResponseSubmitted, which
// carried its comments: version 2 keeps them as LegacyComments (the
// projector writes them with seq 0), and a version 2 event that carries
// "comments" is refused.
func TestResponseSubmittedUpcast(t *testing.T) {
	old := `{"id":"5b0b8f3c-50a5-4f3a-9b53-8a0e0f6a5a11","type":"ResponseSubmitted","version":1,"org":"acme",` +
		`"time":"2026-01-01T00:00:00Z","payload":{"survey_id":"pulse","wave_id":"w1","date":"2026-01-01",` +
		`"cohort":{"department":"Sales","team":"East","location":"Remote","tenure_band":"1-2y"},` +
		`"answers":[{"question_id":"trust-1","dimension":"trust","value":4}],` +
		`"comments":[{"question_id":"better","text":"more focus time"}]}}`
	e, err := DecodeEnvelope([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != 2 || CurrentVersion(ResponseSubmittedType) != 2 {
		t.Fatalf("version after upcast %d, current %d, want 2", e.Version, CurrentVersion(ResponseSubmittedType))
	}
	r, err := DecodePayload[ResponseSubmitted](e, ResponseSubmittedType)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answers) != 1 || r.Answers[0].Value != 4 || r.Cohort.Team != "East" || r.Date != "2026-01-01" {
		t.Fatalf("upcast response %+v", r)
	}
	if want := []CommentAnswer{{QuestionID: "better", Text: "more focus time"}}; !slices.Equal(r.LegacyComments, want) {
		t.Fatalf("legacy comments %+v, want %+v", r.LegacyComments, want)
	}

	t.Run("WithoutComments", func(t *testing.T) {
		noComments := strings.Replace(old, `,"comments":[{"question_id":"better","text":"more focus time"}]`, "", 1)
		e, err := DecodeEnvelope([]byte(noComments))
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodePayload[ResponseSubmitted](e, ResponseSubmittedType)
		if err != nil || r.LegacyComments != nil || strings.Contains(string(e.Payload), "comments") {
			t.Fatalf("upcast response %+v (%s), %v", r, e.Payload, err)
		}
	})
	t.Run("ErrV1UnknownField", func(t *testing.T) {
		bad := strings.Replace(old, `"date":"2026-01-01"`, `"date":"2026-01-01","employee_id":"e7"`, 1)
		if _, err := DecodeEnvelope([]byte(bad)); err == nil {
			t.Fatal("a version 1 response with an unknown field decoded")
		}
	})
	t.Run("ErrV2Comments", func(t *testing.T) {
		v2 := strings.Replace(old, `"version":1`, `"version":2`, 1)
		e, err := DecodeEnvelope([]byte(v2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodePayload[ResponseSubmitted](e, ResponseSubmittedType); err == nil {
			t.Fatal("a version 2 response carrying comments decoded")
		}
	})
}
