package ingest

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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
// then gets each message by its sequence in the shuffled order (heldReader),
// opens it (Sealer) and publishes it.
//
// The gets are pipelined, up to releaseLookahead in flight, and their
// results are taken strictly in the shuffled order: were the publisher to
// take whatever arrives first, how long a get takes (which may depend on
// where in the stream, hence when, the message was stored) would shape the
// output order. Publishes are asynchronous with a bounded window of
// acknowledgements in flight, each one checked. In memory at any time: the
// sequences, at most releaseLookahead fetched messages and releaseWindow
// unacknowledged ones.
//
// Any error stops the release and is returned; the next mixer round starts
// the seal again. That repeats nothing: every response keeps its event id
// as Nats-Msg-Id, so JetStream drops those already stored (and the
// projector drops repeats beyond its duplicate window). Nor does it bias
// the order: the first attempt published a random subset in random order,
// the next publishes the rest in a new random order.
const (
	// releaseLookahead is how many gets of held messages may be in flight
	// or wait, answered, for their turn.
	releaseLookahead = 512
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
// a uniformly random order (see above), each with its cohort mapped by
// remap (releaseRemap), and returns how many it published.
func (m *Mixer) release(ctx context.Context, org, wave string, remap map[schemas.CohortKey]schemas.Cohort) (int, error) {
	src, refs, err := m.heldRefs(ctx, org, wave)
	if err != nil {
		return 0, err
	}
	shuffle(refs)
	m.log.Info("seal releasing", "org", org, "wave", wave, "held", len(refs))
	rd, err := m.newHeldReader(src, org, wave, remap)
	if err != nil {
		return 0, err
	}
	defer rd.close()

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
	requested := 0
	for i := range refs {
		for ; requested < len(refs) && requested < i+releaseLookahead; requested++ {
			if err := rd.get(requested, refs[requested]); err != nil {
				return published, err
			}
		}
		msg, err := rd.take(ctx, i, refs[i])
		if err != nil {
			return published, err
		}
		if msg == nil {
			continue // deleted from the held stream: nothing to release
		}
		if len(inflight) == cap(inflight) {
			if err := acked(<-inflight); err != nil {
				return published, err
			}
		}
		f, err := m.js.PublishMsgAsync(msg)
		if err != nil {
			return published, fmt.Errorf("mixer: publish %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
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
	return published, nil
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
			src.pending = pending
			seq = msg.Sequence + 1
		}
	}
	return src, refs, nil
}

// openStream opens a stream for reading (on Reader if set), or returns
// nil if it does not exist.
func (m *Mixer) openStream(ctx context.Context, name string) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, releaseOpTimeout)
	defer cancel()
	js := m.js
	if m.Reader != nil {
		js = m.Reader
	}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixer: stream %s: %w", name, err)
	}
	return s, nil
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
