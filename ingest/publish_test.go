package ingest

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestPublishBatch stores a response and two comments as one atomic batch
// on a real embedded NATS: all three land; a retry of the same batch (an
// acknowledgement lost) stores nothing twice; a batch cut short before its
// commit, or refused by a stream without atomic publish, stores nothing.
func TestPublishBatch(t *testing.T) {
	ctx := context.Background()
	_, nc, js := testenv.NATS(t)
	subject := schemas.PendingSubject("acme", "w1")
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	cohort := schemas.Cohort{Department: "Sales", Team: "East", Location: "Remote", TenureBand: "1-2y"}
	held := func(t *testing.T) uint64 {
		t.Helper()
		st, err := js.Stream(ctx, schemas.PendingStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	envs, _, err := submissionEvents("acme", day, "pulse", "w1", cohort,
		[]schemas.Answer{{QuestionID: "trust-1", Dimension: schemas.Trust, Value: 4}},
		[]schemas.CommentAnswer{{QuestionID: "better", Text: "more focus time"}, {QuestionID: "worse", Text: "meetings"}})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		if err := publishBatch(ctx, js, subject, envs, nil); err != nil {
			t.Fatal(err)
		}
		if n := held(t); n != 3 {
			t.Fatalf("%d messages held, want 3", n)
		}
	})
	t.Run("RetryStoresOnce", func(t *testing.T) {
		if err := publishBatch(ctx, js, subject, envs, nil); err != nil {
			t.Fatalf("retry of a stored batch: %v", err)
		}
		if n := held(t); n != 3 {
			t.Fatalf("%d messages held after a retry, want 3", n)
		}
	})
	t.Run("CutShortStoresNothing", func(t *testing.T) {
		st, err := js.Stream(ctx, schemas.PendingStream)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		// The first two messages of a batch whose commit never comes.
		for i, env := range envs[:2] {
			data, _ := env.Marshal()
			msg := nats.NewMsg(subject)
			msg.Data = data
			msg.Header.Set(hdrBatchID, "cut-short")
			msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			if _, err := nc.RequestMsg(msg, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if n := held(t); n != 0 {
			t.Fatalf("%d messages of an uncommitted batch held, want 0", n)
		}
	})
	t.Run("ErrAtomicDisabled", func(t *testing.T) {
		cfg := schemas.PendingStreamConfig(1)
		cfg.AllowAtomicPublish = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		fresh, _, err := submissionEvents("acme", day, "pulse", "w1", cohort, nil, []schemas.CommentAnswer{{QuestionID: "better", Text: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := publishBatch(ctx, js, subject, fresh, nil); err == nil {
			t.Fatal("a batch was accepted by a stream without atomic publish")
		}
		if n := held(t); n != 0 {
			t.Fatalf("%d messages held after a refused batch, want 0", n)
		}
	})
}

// TestSubmissionEvents: a response and its comments are separate events
// with ids of their own; the comments carry the cohort, the day and the hash
// of a reply capability of their own, and nothing of the response.
func TestSubmissionEvents(t *testing.T) {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	cohort := schemas.Cohort{Department: "Sales", Team: "East", Location: "Remote", TenureBand: "1-2y"}
	envs, caps, err := submissionEvents("acme", day, "pulse", "w1", cohort,
		[]schemas.Answer{{QuestionID: "trust-1", Dimension: schemas.Trust, Value: 4}},
		[]schemas.CommentAnswer{{QuestionID: "better", Text: "more focus time"}, {QuestionID: "worse", Text: "more focus time"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 3 || envs[0].Type != schemas.ResponseSubmittedType || envs[1].Type != schemas.CommentSubmittedType || envs[2].Type != schemas.CommentSubmittedType {
		t.Fatalf("events %+v, want a response and two comments", envs)
	}
	if envs[0].ID == envs[1].ID || envs[1].ID == envs[2].ID || !envs[0].Time.Equal(day) || !envs[1].Time.Equal(day) {
		t.Fatalf("ids %s %s %s, times %s %s: want distinct ids, all at the day", envs[0].ID, envs[1].ID, envs[2].ID, envs[0].Time, envs[1].Time)
	}
	if len(caps) != 2 || caps[0] == caps[1] {
		t.Fatalf("capabilities %d (distinct: %v), want one of its own per comment", len(caps), len(caps) == 2 && caps[0] != caps[1])
	}
	if _, err := schemas.ParseReplyLink(caps[0] + "." + caps[1]); err != nil {
		t.Fatalf("the capabilities do not make a reply link: %v", err)
	}
	for i, qid := range []string{"better", "worse"} {
		c, err := schemas.DecodePayload[schemas.CommentSubmitted](envs[1+i], schemas.CommentSubmittedType)
		if err != nil {
			t.Fatal(err)
		}
		want := schemas.CommentSubmitted{SurveyID: "pulse", WaveID: "w1", QuestionID: qid, Text: "more focus time", Cohort: cohort, Date: "2026-11-02", ReplyHash: schemas.ReplyHash(caps[i])}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("comment %d: %+v, want %+v", i, c, want)
		}
		for _, capability := range caps {
			if strings.Contains(string(envs[1+i].Payload), capability) {
				t.Fatalf("comment %d's event carries a capability itself", i)
			}
		}
	}
	r, err := schemas.DecodePayload[schemas.ResponseSubmitted](envs[0], schemas.ResponseSubmittedType)
	if err != nil || len(r.LegacyComments) != 0 {
		t.Fatalf("response %+v carries comments (%v)", r, err)
	}
	if strings.Contains(string(envs[0].Payload), schemas.ReplyHash(caps[0])) {
		t.Fatal("the response's event carries a comment's reply hash")
	}
}
