package projector_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
)

// batchRecorder is a projector.Metrics that adds up what it is told.
type batchRecorder struct {
	mu      sync.Mutex
	batches int
	events  int
	rows    map[string]int
	// untimed are tables a batch wrote rows to without an insert time.
	untimed map[string]bool
}

func (r *batchRecorder) Batch(_, events int, rows map[string]int, took time.Duration, ph projector.Phases) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took <= 0 {
		panic("a batch took no time")
	}
	r.batches++
	r.events += events
	for t, n := range rows {
		r.rows[t] += n
		if n > 0 && ph.Tables[t] <= 0 {
			r.untimed[t] = true
		}
		if n > 0 && ph.Insert <= 0 {
			r.untimed["the batch's inserts"] = true
		}
	}
}

// TestProjectMetrics: the projector reports every event once, duplicates
// on the stream left out, and the rows it wrote per table, equal to what
// the tables hold.
func TestProjectMetrics(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(5, 5)), truth: newTruth()}
	pub.setup()
	pub.responses(40)
	pub.duplicates(10)
	rec := &batchRecorder{rows: map[string]int{}, untimed: map[string]bool{}}
	catchUp(t, js, ch, projector.Config{BatchSize: 17, BatchWait: 50 * time.Millisecond, Metrics: rec}, nil)
	checkTables(t, ch, pub.truth)

	answers := 0
	for _, n := range pub.truth.count {
		answers += n
	}
	if rec.batches < 3 {
		t.Errorf("%d batches reported, want at least 3 of 17 events", rec.batches)
	}
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"events", rec.events, len(pub.sent)},
		{"rows of projected_events", rec.rows["projected_events"], len(pub.sent)},
		{"rows of answers", rec.rows["answers"], answers},
		{"rows of invitations", rec.rows["invitations"], pub.truth.invited},
		{"rows of comments", rec.rows["comments"], pub.truth.comments},
		{"rows of surveys", rec.rows["surveys"], 1},
	} {
		if c.got != c.want {
			t.Errorf("%s reported: %d, want %d", c.what, c.got, c.want)
		}
	}
	for table := range rec.untimed {
		t.Errorf("rows of %s were written with no insert time reported", table)
	}
}
