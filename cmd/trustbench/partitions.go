package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/schemas"
)

// The partitioned projection's drain (issue 13, item 3): the same backlog
// of many organisations drained into ClickHouse by 1, 2 and 3 projector
// processes, one per partition of the event stream.

// partitionResult is the drain of one partition count.
type partitionResult struct {
	partitions        int
	events, answerRow int
	// perPartition is each partition's share of the events.
	perPartition []int
	eventsPerSec runs
	rowsPerSec   runs
}

// partitionOrgs is how many organisations the backlog spreads over.
const partitionOrgs = 48

// benchPartitions drains, for each partition count, a backlog of
// partitionOrgs organisations' sealed waves (responded responses in all)
// rounds times: the event stream is made anew split into n partitions and
// the backlog published once; each round empties the projection and starts
// n projector processes, each pinned to one partition, and takes the time
// until every partition's checkpoint has reached its last event.
func benchPartitions(ctx context.Context, e *env, counts []int, responded, rounds int) ([]partitionResult, error) {
	s, err := survey()
	if err != nil {
		return nil, err
	}
	var out []partitionResult
	for _, n := range counts {
		if err := e.js.DeleteStream(ctx, schemas.EventStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, err
		}
		if err := deploy.EnsureStreams(ctx, e.js, 1, n); err != nil {
			return nil, err
		}
		res := partitionResult{partitions: n, perPartition: make([]int, n)}
		if res.events, res.answerRow, err = partitionBacklog(ctx, e, s, responded, n, res.perPartition); err != nil {
			return nil, err
		}
		last, err := partitionLasts(ctx, e, n)
		if err != nil {
			return nil, err
		}
		e.log.Info("partitioned backlog published", "partitions", n, "events", res.events, "answer_rows", res.answerRow, "per_partition", res.perPartition)
		for round := range rounds {
			d, err := drainPartitions(ctx, e, n, last)
			if err != nil {
				return nil, fmt.Errorf("%d partitions, round %d: %w", n, round+1, err)
			}
			if err := checkDrained(ctx, e, res.events, res.answerRow); err != nil {
				return nil, fmt.Errorf("%d partitions: %w", n, err)
			}
			res.eventsPerSec = append(res.eventsPerSec, float64(res.events)/d.Seconds())
			res.rowsPerSec = append(res.rowsPerSec, float64(res.answerRow)/d.Seconds())
			e.log.Info("partitioned backlog drained", "partitions", n, "round", round+1, "seconds", d.Seconds(), "rows_per_s", int(res.rowsPerSec[round]))
		}
		out = append(out, res)
	}
	// Leave the stream as the other stages expect it.
	if err := e.js.DeleteStream(ctx, schemas.EventStream); err != nil {
		return out, err
	}
	return out, deploy.EnsureStreams(ctx, e.js, 1, 1)
}

// partitionBacklog publishes, for each organisation, an opened wave, its
// share of responded responses, its close and its seal, the organisations'
// responses interleaved as many organisations' seals would leave them.
func partitionBacklog(ctx context.Context, e *env, s schemas.SurveyPublished, responded, n int, perPartition []int) (events, answerRows int, err error) {
	p := &publisher{js: e.js}
	staff := people(rand.New(rand.NewPCG(41, 42)), 5000)
	rng := rand.New(rand.NewPCG(43, 44))
	opens := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	orgs := make([]string, partitionOrgs)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org%02d", i)
	}
	emit := func(org string, t schemas.EventType, payload any) error {
		env, err := schemas.NewEnvelope(t, org, opens, payload)
		if err != nil {
			return err
		}
		events++
		perPartition[schemas.PartitionOf(org, n)]++
		return p.publish(env)
	}
	for _, org := range orgs {
		if err := emit(org, schemas.WaveOpenedType, schemas.WaveOpened{WaveID: "w1", SurveyID: s.SurveyID, OpensAt: opens, ClosesAt: opens.AddDate(0, 0, 7), Threshold: 5}); err != nil {
			return 0, 0, err
		}
	}
	for i := range responded {
		org := orgs[i%len(orgs)]
		person := staff[rng.IntN(len(staff))]
		env, err := responseEvent(s, "w1", opens, person, answers(rng, s, person.bias))
		if err != nil {
			return 0, 0, err
		}
		env.OrgID = org
		events++
		perPartition[schemas.PartitionOf(org, n)]++
		answerRows += 10
		if err := p.publish(env); err != nil {
			return 0, 0, err
		}
	}
	for _, org := range orgs {
		if err := emit(org, schemas.WaveClosedType, schemas.WaveClosed{WaveID: "w1"}); err != nil {
			return 0, 0, err
		}
		if err := emit(org, schemas.WaveSealedType, schemas.WaveSealed{WaveID: "w1"}); err != nil {
			return 0, 0, err
		}
	}
	return events, answerRows, p.flush()
}

// partitionLasts is the stream sequence of each partition's last event.
func partitionLasts(ctx context.Context, e *env, n int) ([]uint64, error) {
	st, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	for part := range n {
		if n == 1 {
			info, err := st.Info(ctx)
			if err != nil {
				return nil, err
			}
			out[part] = info.State.LastSeq
			continue
		}
		m, err := st.GetLastMsgForSubject(ctx, schemas.PartitionFilter(part, n))
		if err != nil {
			return nil, fmt.Errorf("last event of partition %d: %w", part, err)
		}
		out[part] = m.Sequence
	}
	return out, nil
}

// drainPartitions empties the projection, starts n projector processes,
// one per partition, and returns the time until every partition's
// checkpoint reaches last (including the processes' start-up).
func drainPartitions(ctx context.Context, e *env, n int, last []uint64) (time.Duration, error) {
	for _, t := range schemas.ProjectionTables {
		if err := e.ch.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			return 0, err
		}
	}
	st, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return 0, err
	}
	for part := range n {
		if err := st.DeleteConsumer(ctx, schemas.PartitionConsumer(schemas.ProjectorConsumer, part, n)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, err
		}
	}
	start := time.Now()
	var names []string
	for part := range n {
		name := fmt.Sprintf("projector-%dof%d", part, n)
		// The harness never asks their health: any free port will do, taken
		// by the process itself (a port found free here could be taken by
		// another connection before the process binds it, as happened).
		if _, err := e.startAs(ctx, name, "projector", "--projector-partitions", strconv.Itoa(n), "--projector-partition-ids", strconv.Itoa(part),
			"--health-addr", "127.0.0.1:0"); err != nil {
			return 0, err
		}
		names = append(names, name)
	}
	defer func() {
		for _, name := range names {
			e.stop(name)
		}
	}()
	for deadline := time.Now().Add(20 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		done := true
		for part := range n {
			var cp uint64
			if err := e.ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.PartitionConsumer(schemas.ProjectorConsumer, part, n)).Scan(&cp); err != nil || cp < last[part] {
				done = false
				break
			}
		}
		if done {
			return time.Since(start), nil
		}
		for _, name := range names {
			if exited(e.procs[name]) {
				return 0, fmt.Errorf("%s exited; see %s.log in the work directory", name, name)
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the projectors did not drain within 20 minutes")
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// checkDrained makes sure every event and answer row is there once.
func checkDrained(ctx context.Context, e *env, events, answerRows int) error {
	var ev, rows uint64
	if err := e.ch.QueryRow(ctx, "SELECT count() FROM projected_events").Scan(&ev); err != nil {
		return err
	}
	if err := e.ch.QueryRow(ctx, "SELECT count() FROM answers").Scan(&rows); err != nil {
		return err
	}
	if int(ev) != events || int(rows) != answerRows {
		return fmt.Errorf("projected %d events and %d answer rows, want %d and %d", ev, rows, events, answerRows)
	}
	return nil
}

// exited says whether a started process has ended (a zombie, not waited
// for yet).
func exited(p *proc) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	i := bytes.LastIndexByte(b, ')')
	return err != nil || (i > 0 && len(b) > i+2 && b[i+2] == 'Z')
}
