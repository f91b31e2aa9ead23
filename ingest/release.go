package ingest

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// The release of a wave's held responses at its seal.
//
// The order in which the responses reach the event stream must be a
// uniformly random permutation of the order in which they arrived, drawn
// from crypto/rand: then the event stream's order says nothing about who
// submitted when. A bounded shuffle buffer (read k messages, emit a random
// one, refill) would keep memory small but leaks order: a response can only
// move about k places from where it arrived, so its place in the event
// stream still dates it. So the release shuffles the whole wave, but only
// its stream sequence numbers (8 bytes a response: 8 MB for a million), and
// then fetches each message by its sequence in the shuffled order, opens
// it (Sealer) and publishes it.
//
// A few fetchers get messages concurrently (direct gets, as held streams
// allow them), but the publisher takes their results strictly in the
// shuffled order: were it to publish whatever arrives first, how long a
// fetch takes (which may depend on where in the stream, hence when, the
// message was stored) would shape the output order. Publishes are
// asynchronous with a bounded window of acknowledgements in flight, each
// one checked. In memory at any time: the sequences, at most
// releaseLookahead+releaseFetchers fetched messages and releaseWindow
// unacknowledged ones.
//
// Any error stops the release and is returned; the next mixer round starts
// the seal again. That repeats nothing: every response keeps its event id
// as Nats-Msg-Id, so JetStream drops those already stored (and the
// projector drops repeats beyond its duplicate window). Nor does it bias
// the order: the first attempt published a random subset in random order,
// the next publishes the rest in a new random order.
const (
	// releaseFetchers get held messages concurrently.
	releaseFetchers = 8
	// releaseLookahead is how many fetched messages may wait for their turn.
	releaseLookahead = 256
	// releaseWindow is how many publishes may await their acknowledgement.
	releaseWindow = 512
	// releaseOpTimeout bounds each read of a held stream.
	releaseOpTimeout = 10 * time.Second
	// releaseAckTimeout bounds the wait for each acknowledgement.
	releaseAckTimeout = 30 * time.Second
	// releaseProgressEvery is how often a long release logs its progress.
	releaseProgressEvery = 10 * time.Second
)

// heldRef names one held message: its sequence in the wave's own held
// stream or, with the pendingRef bit set, in the shared pending stream.
type heldRef uint64

const pendingRef heldRef = 1 << 63

// heldSources are the streams a wave's responses are held in; either may
// be nil (no invitation issued, or the shared stream gone).
type heldSources struct {
	own, pending jetstream.Stream
}

// release publishes every response held for a wave to the event stream in
// a uniformly random order (see above) and returns how many it published.
func (m *Mixer) release(ctx context.Context, org, wave string) (int, error) {
	src, refs, err := m.heldRefs(ctx, org, wave)
	if err != nil {
		return 0, err
	}
	shuffle(refs)
	m.log.Info("seal releasing", "org", org, "wave", wave, "held", len(refs))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	turns := m.fetchAll(ctx, &wg, src, org, wave, refs)

	inflight := make(chan jetstream.PubAckFuture, releaseWindow)
	published, total := 0, len(refs)
	lastLog := time.Now()
	acked := func(f jetstream.PubAckFuture) error {
		if err := awaitAck(ctx, f); err != nil {
			return err
		}
		if published++; published == 1 {
			if err := m.step(org, wave, SealPublishing); err != nil {
				return err
			}
		}
		if time.Since(lastLog) >= releaseProgressEvery {
			lastLog = time.Now()
			m.log.Info("seal progress", "org", org, "wave", wave, "published", published, "total", total)
		}
		return nil
	}
	for turn := range turns {
		r := <-turn // every fetch answers, also when cancelled
		if r.err != nil {
			return published, r.err
		}
		if r.msg == nil {
			continue // deleted from the held stream: nothing to release
		}
		if len(inflight) == cap(inflight) {
			if err := acked(<-inflight); err != nil {
				return published, err
			}
		}
		f, err := m.js.PublishMsgAsync(r.msg)
		if err != nil {
			return published, fmt.Errorf("mixer: publish %s: %w", r.msg.Header.Get(jetstream.MsgIDHeader), err)
		}
		inflight <- f
		if published == 0 {
			// The first response alone, so that SealPublishing marks
			// exactly one published response.
			if err := acked(<-inflight); err != nil {
				return published, err
			}
		}
	}
	for len(inflight) > 0 {
		if err := acked(<-inflight); err != nil {
			return published, err
		}
	}
	return published, ctx.Err()
}

// heldRefs opens the streams a wave's responses are held in and lists
// their messages: for the wave's own stream every sequence from its first
// to its last (a deleted one is skipped when fetched), for the shared
// pending stream the sequences on the wave's subject (only waves from
// before waves had streams of their own, so few).
func (m *Mixer) heldRefs(ctx context.Context, org, wave string) (heldSources, []heldRef, error) {
	var src heldSources
	var refs []heldRef
	own, err := m.openStream(ctx, schemas.HeldStream(org, wave))
	if err != nil {
		return src, nil, err
	}
	if own != nil {
		src.own = own
		if st := own.CachedInfo().State; st.Msgs > 0 {
			refs = make([]heldRef, 0, st.LastSeq-st.FirstSeq+1)
			for seq := st.FirstSeq; seq <= st.LastSeq; seq++ {
				refs = append(refs, heldRef(seq))
			}
		}
	}
	pending, err := m.openStream(ctx, schemas.PendingStream)
	if err != nil {
		return src, nil, err
	}
	if pending != nil {
		src.pending = pending
		subject := schemas.PendingSubject(org, wave)
		for seq := uint64(1); ; {
			gctx, cancel := context.WithTimeout(ctx, releaseOpTimeout)
			msg, err := pending.GetMsg(gctx, seq, jetstream.WithGetMsgSubject(subject))
			cancel()
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return src, nil, fmt.Errorf("mixer: read %s: %w", subject, err)
			}
			refs = append(refs, heldRef(msg.Sequence)|pendingRef)
			seq = msg.Sequence + 1
		}
	}
	return src, refs, nil
}

// openStream opens a stream, or returns nil if it does not exist.
func (m *Mixer) openStream(ctx context.Context, name string) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, releaseOpTimeout)
	defer cancel()
	s, err := m.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixer: stream %s: %w", name, err)
	}
	return s, nil
}

// fetched is a held message made ready for the event stream: msg is nil
// for a message no longer in its stream.
type fetched struct {
	msg *nats.Msg
	err error
}

// fetchAll fetches refs with releaseFetchers workers and returns, in the
// order of refs, one channel per message that receives its result. At most
// releaseLookahead results wait to be taken. The channel of channels closes
// after the last ref, or early when ctx ends.
func (m *Mixer) fetchAll(ctx context.Context, wg *sync.WaitGroup, src heldSources, org, wave string, refs []heldRef) <-chan chan fetched {
	type job struct {
		ref  heldRef
		done chan fetched
	}
	jobs := make(chan job)
	turns := make(chan chan fetched, releaseLookahead)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(turns)
		defer close(jobs)
		for _, ref := range refs {
			j := job{ref, make(chan fetched, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			select {
			case turns <- j.done:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range releaseFetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				msg, err := m.fetchHeld(ctx, src, org, wave, j.ref)
				j.done <- fetched{msg, err}
			}
		}()
	}
	return turns
}

// fetchHeld reads one held message, opens it and addresses it to the event
// stream under its event id. It returns nil for a message that is gone.
func (m *Mixer) fetchHeld(ctx context.Context, src heldSources, org, wave string, ref heldRef) (*nats.Msg, error) {
	stream, seq := src.own, uint64(ref)
	if ref&pendingRef != 0 {
		stream, seq = src.pending, uint64(ref&^pendingRef)
	}
	ctx, cancel := context.WithTimeout(ctx, releaseOpTimeout)
	defer cancel()
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixer: read held message %d: %w", seq, err)
	}
	data, err := m.Sealer.Open(org, wave, raw.Data)
	if err != nil {
		return nil, fmt.Errorf("mixer: held message %d: %w", seq, err)
	}
	env, err := schemas.DecodeEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("mixer: held message %d: %w", seq, err)
	}
	msg := &nats.Msg{Subject: schemas.Subject(org, env.Type), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, env.ID.String())
	return msg, nil
}

// awaitAck waits for a publish's acknowledgement.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	t := time.NewTimer(releaseAckTimeout)
	defer t.Stop()
	id := f.Msg().Header.Get(jetstream.MsgIDHeader)
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("mixer: publish %s: %w", id, err)
	case <-t.C:
		return fmt.Errorf("mixer: publish %s: no acknowledgement in %v", id, releaseAckTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shuffle permutes s uniformly with a generator seeded from crypto/rand,
// so the order cannot be predicted or replayed.
func shuffle[T any](s []T) {
	var seed [32]byte
	if _, err := cryptorand.Read(seed[:]); err != nil {
		panic("mixer: crypto/rand failed: " + err.Error())
	}
	rand.New(rand.NewChaCha8(seed)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}
