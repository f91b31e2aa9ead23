package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// sealResult is the seal of one wave.
type sealResult struct {
	responses int
	fill      time.Duration // publishing the held responses (not measured against a goal)
	// closeToSealed runs from WaveClosed to WaveSealed in the event stream
	// (stream timestamps): the grace period, the wait for the mixer's next
	// round and the release. release runs from the first released
	// response to WaveSealed: the seal itself.
	closeToSealed, release time.Duration
	rate                   float64 // responses/s released
	// limitBefore and limitAfter are raw async publishes/s measured just
	// before the close and just after the seal; the machine's other load
	// drifts, so the seal is compared with their mean (limitRate).
	limitBefore, limitAfter, limitRate float64
	baseRSS, peakRSS                   float64 // MiB: the ingest process before the close, and its peak (VmHWM)
	sampledRSS                         float64 // MiB: the highest VmRSS sampled every 100 ms during the seal
	// harnessRSS is the harness's own VmRSS (it embeds the NATS server)
	// before the close and its highest sample during the seal, in MiB.
	harnessBefore, harnessRSS float64
}

const (
	// sealLimitWindow is the raw publishes' window of acks in flight: the
	// mixer's (ingest's releaseWindow).
	sealLimitWindow = 512
	sealGoalRatio   = 0.5
	sealGoalMB      = 200.0
)

// benchSeal seals one wave of each size in a real `trustpulse serve
// --target ingest` process, started for it alone so that its peak RSS is
// the seal's. The wave's held stream is filled as ingest holds
// responses: created by the ledger (EnsureWave), each response envelope
// encrypted with the process's seal key and published to the held subject
// with its event id as Nats-Msg-Id. Then the harness closes the wave and
// the process's mixer seals it; its release is timed from the event
// stream's timestamps. Beside it, the limit: the same payloads published
// asynchronously, with the mixer's window of acks in flight, to a copy of
// the event stream on the same server, just before the close and just
// after the seal.
func benchSeal(ctx context.Context, e *env, sizes []int) ([]sealResult, error) {
	s, sealer, keyFile, err := sealSetup(e)
	if err != nil {
		return nil, err
	}
	var out []sealResult
	for _, n := range sizes {
		r, err := sealWave(ctx, e, s, sealer, keyFile, n)
		if err != nil {
			return nil, fmt.Errorf("seal of %d: %w", n, err)
		}
		e.log.Info("seal", "responses", n, "release_s", r.release.Seconds(), "close_to_sealed_s", r.closeToSealed.Seconds(),
			"per_s", int(r.rate), "limit_before_per_s", int(r.limitBefore), "limit_after_per_s", int(r.limitAfter), "ratio", r.rate/r.limitRate, "peak_rss_mb", int(r.peakRSS), "sampled_rss_mb", int(r.sampledRSS),
			"harness_rss_before_mb", int(r.harnessBefore), "harness_rss_mb", int(r.harnessRSS))
		out = append(out, r)
	}
	return out, nil
}

// sealSetup is what every held wave of the harness needs: the survey, and
// the seal key the harness encrypts with and the ingest processes it
// starts decrypt with (one file in the run's directory).
func sealSetup(e *env) (s schemas.SurveyPublished, sealer *ingest.Sealer, keyFile string, err error) {
	if s, err = survey(); err != nil {
		return s, nil, "", err
	}
	keyFile = filepath.Join(e.dir, "seal.key")
	sealer, err = ingest.LoadSealKey(keyFile, true)
	return s, sealer, keyFile, err
}

func sealWave(ctx context.Context, e *env, s schemas.SurveyPublished, sealer *ingest.Sealer, keyFile string, n int) (sealResult, error) {
	r := sealResult{responses: n}
	wave := fmt.Sprintf("seal-%d", n)
	now := time.Now().UTC()
	if err := e.admin.OpenWave(ctx, benchOrg, schemas.WaveOpened{WaveID: wave, SurveyID: s.SurveyID, OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(24 * time.Hour)}); err != nil {
		return r, err
	}
	if err := e.ledger.EnsureWave(ctx, benchOrg, wave); err != nil {
		return r, err
	}
	pool, err := sealPayloads(s, wave, 1024)
	if err != nil {
		return r, err
	}
	start := time.Now()
	if err := fillHeld(e, sealer, wave, n, func(i int) (schemas.Envelope, error) {
		env := pool[i%len(pool)]
		env.ID = uuid.New()
		return env, nil
	}); err != nil {
		return r, err
	}
	r.fill = time.Since(start)
	e.log.Info("held stream filled", "wave", wave, "responses", n, "seconds", r.fill.Seconds())

	if r.limitBefore, err = sealLimit(ctx, e, pool, n); err != nil {
		return r, fmt.Errorf("limit: %w", err)
	}
	name := "seal-" + fmt.Sprint(n)
	p, err := e.startAs(ctx, name, "ingest", "--seal-key-file", keyFile, "--log-level", "info")
	if err != nil {
		return r, err
	}
	defer e.stop(name)
	if r.baseRSS, err = p.rss(); err != nil {
		return r, err
	}
	events, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return r, err
	}
	responses := schemas.Subject(benchOrg, schemas.ResponseSubmittedType)
	before, err := subjectCount(ctx, events, responses)
	if err != nil {
		return r, err
	}

	r.harnessBefore, _ = selfRSS()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the process's resident set, every 100 ms
		defer wg.Done()
		for {
			if mb, err := p.rss(); err == nil {
				r.sampledRSS = max(r.sampledRSS, mb)
			}
			if mb, err := selfRSS(); err == nil {
				r.harnessRSS = max(r.harnessRSS, mb)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	err = closeAndWait(ctx, e, p, wave)
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	if r.peakRSS, err = p.peakRSS(); err != nil {
		return r, err
	}
	after, err := subjectCount(ctx, events, responses)
	if err != nil {
		return r, err
	}
	if after-before != uint64(n) {
		return r, fmt.Errorf("%d responses released, want %d", after-before, n)
	}
	if r.closeToSealed, r.release, err = sealTimes(ctx, events, wave); err != nil {
		return r, err
	}
	r.rate = float64(n) / r.release.Seconds()
	if r.limitAfter, err = sealLimit(ctx, e, pool, n); err != nil {
		return r, fmt.Errorf("limit: %w", err)
	}
	r.limitRate = (r.limitBefore + r.limitAfter) / 2
	return r, nil
}

// closeAndWait closes the wave and waits until the harness's catalog sees
// it sealed, logging the ingest process's progress every 30 s.
func closeAndWait(ctx context.Context, e *env, p *proc, wave string) error {
	if err := e.admin.CloseWave(ctx, benchOrg, wave); err != nil {
		return err
	}
	start, lastLog := time.Now(), time.Now()
	for deadline := time.Now().Add(60 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if w, _ := e.cat.Wave(benchOrg, wave); w.Sealed {
			return nil
		}
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			rss, _ := p.rss()
			e.log.Info("sealing", "wave", wave, "seconds", int(time.Since(start).Seconds()), "rss_mb", int(rss))
		}
		if _, err := p.rss(); err != nil {
			return fmt.Errorf("the ingest process: %w", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("wave %s not sealed after %v (see the process's log): %v", wave, time.Since(start).Round(time.Second), ctx.Err())
		}
	}
}

// sealTimes reads the wave's WaveClosed, first released response and
// WaveSealed from the event stream and returns the times from the close
// and from the first response to the seal.
func sealTimes(ctx context.Context, events jetstream.Stream, wave string) (closeToSealed, release time.Duration, err error) {
	sealed, err := events.GetLastMsgForSubject(ctx, schemas.Subject(benchOrg, schemas.WaveSealedType))
	if err != nil {
		return 0, 0, fmt.Errorf("WaveSealed: %w", err)
	}
	closed, err := events.GetLastMsgForSubject(ctx, schemas.Subject(benchOrg, schemas.WaveClosedType))
	if err != nil {
		return 0, 0, fmt.Errorf("WaveClosed: %w", err)
	}
	for m, id := range map[*jetstream.RawStreamMsg]uuid.UUID{sealed: schemas.SealEventID(benchOrg, wave), closed: schemas.CloseEventID(benchOrg, wave)} {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return 0, 0, err
		}
		if env.ID != id {
			return 0, 0, fmt.Errorf("the last %s event at %d is not %s's", env.Type, m.Sequence, wave)
		}
	}
	first, err := events.GetMsg(ctx, closed.Sequence+1, jetstream.WithGetMsgSubject(schemas.Subject(benchOrg, schemas.ResponseSubmittedType)))
	if err != nil {
		return 0, 0, fmt.Errorf("first released response: %w", err)
	}
	return sealed.Time.Sub(closed.Time), sealed.Time.Sub(first.Time), nil
}

// selfRSS is the harness's resident set now, in MiB.
func selfRSS() (float64, error) {
	p := &proc{cmd: &exec.Cmd{Process: &os.Process{Pid: os.Getpid()}}}
	return p.rss()
}

// subjectCount is the number of messages on one subject of a stream.
func subjectCount(ctx context.Context, st jetstream.Stream, subject string) (uint64, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// sealLimit publishes n of the seal's payloads (response envelopes, as the
// mixer publishes them, each with an id of its own) to a copy of the event
// stream's configuration on the same server, with the mixer's window of
// acks in flight, and returns the rate.
func sealLimit(ctx context.Context, e *env, pool []schemas.Envelope, n int) (float64, error) {
	cfg := schemas.StreamConfig(1, 1)
	cfg.Name, cfg.Subjects = "BENCH_SEAL_LIMIT", []string{"bench.seallimit.>"}
	if _, err := e.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return 0, err
	}
	defer func() { _ = e.js.DeleteStream(context.Background(), cfg.Name) }()
	payloads := make([][]byte, len(pool))
	for i, env := range pool {
		var err error
		if payloads[i], err = env.Marshal(); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := publishWindow(e.js, n, sealLimitWindow, func(i int) (*nats.Msg, error) {
		return idMsg("bench.seallimit.responses", uuid.NewString(), payloads[i%len(payloads)]), nil
	}); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sealPayloads draws n response envelopes of a wave.
func sealPayloads(s schemas.SurveyPublished, wave string, n int) ([]schemas.Envelope, error) {
	rng := rand.New(rand.NewPCG(41, 42))
	staff := people(rng, n)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	out := make([]schemas.Envelope, n)
	for i, person := range staff {
		var err error
		if out[i], err = responseEvent(s, wave, day, person, answers(rng, s, person.bias)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillHeld fills a wave's held stream as ingest holds responses: n
// envelopes made by next, each encrypted with the process's seal key and
// published to the held subject under its keyed held id as Nats-Msg-Id.
func fillHeld(e *env, sealer *ingest.Sealer, wave string, n int, next func(i int) (schemas.Envelope, error)) error {
	subject := schemas.HeldSubject(benchOrg, wave)
	err := publishWindow(e.js, n, 2048, func(i int) (*nats.Msg, error) {
		env, err := next(i)
		if err != nil {
			return nil, err
		}
		data, err := env.Marshal()
		if err != nil {
			return nil, err
		}
		if data, err = sealer.Seal(benchOrg, wave, data, ingest.HeldResponseSize); err != nil {
			return nil, err
		}
		return idMsg(subject, sealer.HeldMsgID(benchOrg, wave, env.ID.String()), data), nil
	})
	if err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	return nil
}

func idMsg(subject, id string, data []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}

// publishWindow publishes n messages made by next asynchronously, with at
// most window acks in flight, checking every ack.
func publishWindow(js jetstream.JetStream, n, window int, next func(i int) (*nats.Msg, error)) error {
	inflight := make(chan jetstream.PubAckFuture, window)
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("publish: no ack in 30s")
		}
	}
	for i := range n {
		msg, err := next(i)
		if err != nil {
			return err
		}
		if len(inflight) == cap(inflight) {
			if err := wait(<-inflight); err != nil {
				return err
			}
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return err
		}
		inflight <- f
	}
	for len(inflight) > 0 {
		if err := wait(<-inflight); err != nil {
			return err
		}
	}
	return nil
}
