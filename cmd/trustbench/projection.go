package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/schemas"
)

// stage is one step of the growth benchmark: the organisation's history
// grown to waves waves, drained by the projector from a backlog.
type stage struct {
	waves, answerRows, totalRows int
	drain                        time.Duration
	rowsPerSec                   float64
	queries                      []queryResult // single-wave queries at this size
	profile                      *savedProfile // the projector's CPU, for the profiled stage
	phases                       phaseTimes    // where the projector's time went
}

// projectorProfileFor is how long the profiled stage's drain is profiled
// from the projector's start (its drain takes 15-60 s at the full sizes).
const projectorProfileFor = 10 * time.Second

// benchWaves are the benchmark organisation's waves, weekly.
func benchWaves(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("w%02d", i+1)
	}
	return out
}

// staffSize are invited and respondedPerWave answer in each wave (set
// from the run's sizes): 100,000 responses are 1M answer rows.
var staffSize = 105_000

// benchProjection grows the organisation stage by stage: with the
// projector stopped, it publishes the next waves' events (a backlog), then
// starts the projector and times the drain until the checkpoint reaches
// the last event. After each stage, measure runs the queries. The drain of
// the stage reaching profiled waves has the projector's CPU profiled.
func benchProjection(ctx context.Context, e *env, stages []int, profiled int, measure func(stage) ([]queryResult, error)) ([]stage, float64, error) {
	s, err := survey()
	if err != nil {
		return nil, 0, err
	}
	staff := people(rand.New(rand.NewPCG(21, 22)), staffSize)
	first := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	// What the stages before left on the event stream (the ingest stage's
	// invitations and waves) is drained first, untimed: else the first
	// stage would count their time against its own wave's rows.
	peak, err := drainEarlier(ctx, e)
	if err != nil {
		return nil, 0, err
	}
	var out []stage
	done, total := 0, 0
	for _, upTo := range stages {
		p := &publisher{js: e.js}
		rows := 0
		for w := done; w < upTo; w++ {
			n, err := waveEvents(ctx, p, s, staff, benchWaves(upTo)[w], first.AddDate(0, 0, 7*w), respondedPerWave, uint64(w+1))
			if err != nil {
				return nil, 0, err
			}
			rows += n
		}
		done, total = upTo, total+rows
		e.log.Info("backlog published", "waves", upTo, "answer_rows", rows, "last_seq", p.last)
		start := time.Now()
		proj, err := e.start(ctx, "projector")
		if err != nil {
			return nil, 0, err
		}
		var finish func() (savedProfile, error)
		if upTo == profiled {
			finish = e.profiling(ctx, proj, "projector-drain", fmt.Sprintf("the first %v of the drain to %d waves", projectorProfileFor, upTo), projectorProfileFor)
		}
		if err := waitCheckpoint(ctx, e, p.last, 20*time.Minute); err != nil {
			return nil, 0, err
		}
		st := stage{waves: upTo, answerRows: rows, totalRows: total, drain: time.Since(start)}
		if st.phases, err = projectorPhases(ctx, proj); err != nil {
			return nil, 0, err
		}
		if finish != nil {
			sp, err := finish()
			if err != nil {
				return nil, 0, err
			}
			st.profile = &sp
		}
		if err := checkSealed(ctx, e, benchWaves(upTo)[done-1], respondedPerWave*10); err != nil {
			return nil, 0, err
		}
		st.rowsPerSec = float64(rows) / st.drain.Seconds()
		if rss, err := proj.peakRSS(); err == nil {
			peak = max(peak, rss)
		}
		e.stop("projector")
		e.log.Info("backlog drained", "waves", upTo, "seconds", st.drain.Seconds(), "rows_per_s", int(st.rowsPerSec))
		if st.queries, err = measure(st); err != nil {
			return nil, 0, err
		}
		out = append(out, st)
	}
	return out, peak, nil
}

// drainEarlier projects whatever the event stream holds beyond the
// checkpoint, and returns the projector's peak RSS while it did.
func drainEarlier(ctx context.Context, e *env) (float64, error) {
	st, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return 0, err
	}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return 0, nil
	}
	e.log.Info("draining what earlier stages left on the event stream", "last_seq", last)
	proj, err := e.start(ctx, "projector")
	if err != nil {
		return 0, err
	}
	defer e.stop("projector")
	if err := waitCheckpoint(ctx, e, last, 20*time.Minute); err != nil {
		return 0, err
	}
	return proj.peakRSS()
}

// profiledStage is the stage whose drain is profiled: the second, the
// first with a history before it.
func profiledStage(stages []int) int {
	return stages[min(1, len(stages)-1)]
}

// projectionAlone runs the insert limit and the first two stages of the
// growth (a drain into an empty store, then one with a wave before it),
// the second profiled, and logs the figures: for working on the
// projector's speed without the whole run.
func projectionAlone(ctx context.Context, e *env, sz sizes, rounds int) error {
	limit, n, err := benchInsertLimit(ctx, e, rounds)
	if err != nil {
		return fmt.Errorf("insert limit: %w", err)
	}
	e.log.Info("insert limit", "rows", n, "rows_per_s", limit.format("", 0))
	stages := sz.stages[:min(2, len(sz.stages))]
	none := func(stage) ([]queryResult, error) { return nil, nil }
	out, rss, err := benchProjection(ctx, e, stages, profiledStage(stages), none)
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	for _, st := range out {
		e.log.Info("drain", "waves", st.waves, "answer_rows", st.answerRows, "seconds", st.drain.Seconds(), "rows_per_s", int(st.rowsPerSec), "ratio", st.rowsPerSec/limit.median())
		e.log.Info("projector phases (s)", "phases", st.phases.phase, "inserts", st.phases.insert)
		if sp := st.profile; sp != nil {
			for _, l := range sp.top {
				e.log.Info("projector profile", "function", l.function, "flat_s", l.flat, "cum_s", l.cum)
			}
			e.log.Info("projector profile saved", "file", filepath.Join(e.profileDir, sp.file))
		}
	}
	e.log.Info("projector peak RSS", "MB", rss)
	return nil
}

// checkSealed makes sure a wave's results count its answers: every
// answer row projected before the wave's (first) seal, which is what the
// query service counts.
func checkSealed(ctx context.Context, e *env, wave string, want int) error {
	var n uint64
	if err := e.ch.QueryRow(ctx, "SELECT count() FROM answers WHERE org = ? AND wave_id = ? AND seq < (SELECT min(seq) FROM wave_seals WHERE org = ? AND wave_id = ?)",
		benchOrg, wave, benchOrg, wave).Scan(&n); err != nil {
		return fmt.Errorf("check the seal of %s: %w", wave, err)
	}
	if int(n) != want {
		return fmt.Errorf("wave %s: %d answer rows before its seal, want %d (was it sealed by something else first?)", wave, n, want)
	}
	return nil
}

// waitCheckpoint waits until the projector has applied stream sequence seq.
func waitCheckpoint(ctx context.Context, e *env, seq uint64, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		var cp uint64
		if err := e.ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.ProjectorConsumer).Scan(&cp); err == nil && cp >= seq {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("projector did not reach sequence %d within %v", seq, limit)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// benchInsertLimit inserts one wave's answer rows straight into a copy of
// the answers table with clickhouse-go batches of 50,000: the limit of the
// projector's writes.
func benchInsertLimit(ctx context.Context, e *env, rounds int) (runs, int, error) {
	s, err := survey()
	if err != nil {
		return nil, 0, err
	}
	if err := e.ch.Exec(ctx, "CREATE TABLE IF NOT EXISTS answers_limit AS answers"); err != nil {
		return nil, 0, err
	}
	staff := people(rand.New(rand.NewPCG(21, 22)), staffSize)
	rng := rand.New(rand.NewPCG(1, 7))
	type row struct {
		q, dim string
		v      uint8
		id     uuid.UUID
		c      schemas.Cohort
		day    time.Time
	}
	var rows []row
	day := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	for _, i := range rng.Perm(len(staff))[:respondedPerWave] {
		id := uuid.New()
		a := answers(rng, s, staff[i].bias)
		for _, q := range s.Questions {
			if v, ok := a[q.ID]; ok {
				rows = append(rows, row{q.ID, string(q.Dimension), uint8(v), id, staff[i].cohort, day})
			}
		}
	}
	var out runs
	for range rounds {
		if err := e.ch.Exec(ctx, "TRUNCATE TABLE answers_limit"); err != nil {
			return nil, 0, err
		}
		start := time.Now()
		for lo := 0; lo < len(rows); lo += 50_000 {
			b, err := e.ch.PrepareBatch(ctx, "INSERT INTO answers_limit (org, wave_id, survey_id, question_id, dimension, value, response_id, department, team, location, tenure_band, response_date, seq)")
			if err != nil {
				return nil, 0, err
			}
			for i, r := range rows[lo:min(lo+50_000, len(rows))] {
				if err := b.Append(benchOrg, "limit", benchSurvey, r.q, r.dim, r.v, r.id, r.c.Department, r.c.Team, r.c.Location, r.c.TenureBand, r.day, uint64(lo+i)); err != nil {
					return nil, 0, err
				}
			}
			if err := b.Send(); err != nil {
				return nil, 0, err
			}
		}
		out = append(out, float64(len(rows))/time.Since(start).Seconds())
	}
	return out, len(rows), nil
}

// benchFreshness publishes responses to the event stream at a steady rate
// (as the mixer releases them) for d, with the projector running, and
// measures for every 20th how long until the projector's checkpoint covers
// it: the time from publish to queryable.
func benchFreshness(ctx context.Context, e *env, rate float64, d time.Duration) (latencies, error) {
	s, err := survey()
	if err != nil {
		return nil, err
	}
	if _, err := e.start(ctx, "projector"); err != nil {
		return nil, err
	}
	defer e.stop("projector")
	staff := people(rand.New(rand.NewPCG(31, 32)), 5000)
	rng := rand.New(rand.NewPCG(33, 34))
	type probe struct {
		seq  uint64
		sent time.Time
	}
	var mu sync.Mutex
	var probes []probe
	var seen latencies
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader's view: the checkpoint, every 10ms
		defer wg.Done()
		for {
			var cp uint64
			_ = e.ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.ProjectorConsumer).Scan(&cp)
			now := time.Now()
			mu.Lock()
			rest := probes[:0]
			for _, p := range probes {
				if cp >= p.seq {
					seen = append(seen, now.Sub(p.sent))
				} else {
					rest = append(rest, p)
				}
			}
			probes = rest
			left := len(probes)
			mu.Unlock()
			select {
			case <-stop:
				if left == 0 {
					return
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	day := time.Now().UTC().Truncate(24 * time.Hour)
	for i := range int(rate * d.Seconds()) {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		person := staff[rng.IntN(len(staff))]
		env, err := responseEvent(s, "fresh", day, person, answers(rng, s, person.bias))
		if err != nil {
			return nil, err
		}
		data, _ := env.Marshal()
		if i%20 != 0 {
			if _, err := e.js.PublishAsync(schemas.Subject(benchOrg, env.Type), data); err != nil {
				return nil, err
			}
			continue
		}
		sent := time.Now()
		ack, err := e.js.Publish(ctx, schemas.Subject(benchOrg, env.Type), data)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		probes = append(probes, probe{ack.Sequence, sent})
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	return seen, nil
}
