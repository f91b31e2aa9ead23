package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// heldReader gets held messages by sequence for the release, with JetStream
// direct gets pipelined on one connection: requests are sent without
// waiting for the answers, each with a reply subject that ends in the
// message's place in the release, and one subscription files the answers
// by that place. Gets that each wait for their answer (jetstream's GetMsg)
// are bound by the round trip: on a two-core machine about 30,000 a second
// with 32 at once, where pipelined ones reach well over 100,000. The server
// answers a connection's direct gets one at a time in its read loop, so
// the reader uses Mixer.Reader's connection when it is set, apart from the
// publishes. Opening and decoding the answers is most of the seal's own
// work, so heldDecoders goroutines share it; as every answer is filed by
// its place, which of them finishes first does not change the order.
//
// A direct get may be answered by a replica that lags behind its stream's
// leader, so a message the reader does not find is looked up once more
// through the leader (the stream message API) before it counts as deleted.
type heldReader struct {
	nc    *nats.Conn
	sub   *nats.Subscription
	inbox string
	src   heldSources
	org   string
	wave  string
	open  func([]byte) ([]byte, error)
	remap map[schemas.CohortKey]schemas.Cohort
	// slots hold the answer of place i at i % releaseLookahead: place
	// i+releaseLookahead is only asked for after place i is taken.
	slots []chan heldAnswer
	timer *time.Timer
	// answers go from the subscription to the decoders; done stops them.
	answers chan *nats.Msg
	done    chan struct{}
}

// heldDecoders open and decode the answers of a release.
const heldDecoders = 4

// heldAnswer is a held message opened and addressed to the event stream,
// or notFound, or the error that stops the release.
type heldAnswer struct {
	msg      *nats.Msg
	notFound bool
	err      error
}

// directGetPrefix starts the subject of a stream's direct gets.
const directGetPrefix = "$JS.API.DIRECT.GET."

// newHeldReader turns on direct gets for the wave's streams that lack them
// (held streams made before HeldStreamConfig allowed them) and subscribes
// to the answers.
func (m *Mixer) newHeldReader(src heldSources, org, wave string, remap map[schemas.CohortKey]schemas.Cohort) (*heldReader, error) {
	js := m.js
	if m.Reader != nil {
		js = m.Reader
	}
	for _, s := range []jetstream.Stream{src.own, src.pending} {
		if s == nil || s.CachedInfo().Config.AllowDirect {
			continue
		}
		cfg := s.CachedInfo().Config
		cfg.AllowDirect = true
		ctx, cancel := context.WithTimeout(context.Background(), releaseOpTimeout)
		_, err := js.UpdateStream(ctx, cfg)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("mixer: allow direct gets on %s: %w", cfg.Name, err)
		}
	}
	open, err := m.Sealer.opener(org, wave)
	if err != nil {
		return nil, err
	}
	rd := &heldReader{nc: js.Conn(), src: src, org: org, wave: wave, open: open, remap: remap,
		slots: make([]chan heldAnswer, releaseLookahead), timer: time.NewTimer(releaseOpTimeout),
		answers: make(chan *nats.Msg, releaseLookahead), done: make(chan struct{})}
	for i := range rd.slots {
		rd.slots[i] = make(chan heldAnswer, 1)
	}
	for range heldDecoders {
		go rd.decodeAll()
	}
	rd.inbox = rd.nc.NewInbox()
	if rd.sub, err = rd.nc.Subscribe(rd.inbox+".*", rd.answer); err != nil {
		return nil, fmt.Errorf("mixer: subscribe to held messages: %w", err)
	}
	return rd, nil
}

func (rd *heldReader) close() {
	_ = rd.sub.Unsubscribe()
	close(rd.done)
	rd.timer.Stop()
}

// stream names the stream and sequence of a held message.
func (rd *heldReader) stream(ref heldRef) (string, uint64) {
	if ref&pendingRef != 0 {
		return rd.src.pending.CachedInfo().Config.Name, uint64(ref &^ pendingRef)
	}
	return rd.src.own.CachedInfo().Config.Name, uint64(ref)
}

// get asks for the held message at place i of the release.
func (rd *heldReader) get(i int, ref heldRef) error {
	name, seq := rd.stream(ref)
	req := strconv.AppendUint([]byte(`{"seq":`), seq, 10)
	req = append(req, `,"no_hdr":true}`...) // the payload only: the held message's own headers are not needed
	if err := rd.nc.PublishRequest(directGetPrefix+name, rd.inbox+"."+strconv.Itoa(i), req); err != nil {
		return fmt.Errorf("mixer: get held message %d: %w", seq, err)
	}
	return nil
}

// answer hands the answer to one get to the decoders; it runs on the
// subscription's goroutine.
func (rd *heldReader) answer(msg *nats.Msg) {
	select {
	case rd.answers <- msg:
	case <-rd.done:
	}
}

// decodeAll files decoded answers by their place until the reader closes.
func (rd *heldReader) decodeAll() {
	for {
		select {
		case msg := <-rd.answers:
			i, err := strconv.Atoi(strings.TrimPrefix(msg.Subject, rd.inbox+"."))
			if err != nil || i < 0 {
				continue // not an answer of ours
			}
			select {
			case rd.slots[i%len(rd.slots)] <- rd.decode(msg):
			case <-rd.done:
				return
			}
		case <-rd.done:
			return
		}
	}
}

// decode turns a direct get's answer into a message for the event stream,
// its cohort mapped by remap.
func (rd *heldReader) decode(msg *nats.Msg) heldAnswer {
	seq := msg.Header.Get(jetstream.SequenceHeader)
	if len(msg.Data) == 0 && msg.Header.Get("Status") != "" {
		switch status := msg.Header.Get("Status"); status {
		case "404":
			return heldAnswer{notFound: true}
		case "503":
			return heldAnswer{err: errors.New("mixer: get held message: no responders (does the stream allow direct gets?)")}
		default:
			return heldAnswer{err: fmt.Errorf("mixer: get held message: status %s %s", status, msg.Header.Get("Description"))}
		}
	}
	data, err := rd.open(msg.Data)
	if err != nil {
		return heldAnswer{err: fmt.Errorf("mixer: held message %s: %w", seq, err)}
	}
	env, err := schemas.DecodeEnvelope(data)
	if err != nil {
		return heldAnswer{err: fmt.Errorf("mixer: held message %s: %w", seq, err)}
	}
	if data, err = recohort(env, data, rd.remap); err != nil {
		return heldAnswer{err: fmt.Errorf("mixer: held message %s: %w", seq, err)}
	}
	out := &nats.Msg{Subject: schemas.Subject(rd.org, env.Type), Data: data, Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, env.ID.String())
	return heldAnswer{msg: out}
}

// take waits for the answer at place i, asked for by get. It returns nil
// for a message deleted from its stream.
func (rd *heldReader) take(ctx context.Context, i int, ref heldRef) (*nats.Msg, error) {
	rd.timer.Reset(releaseOpTimeout)
	var a heldAnswer
	select {
	case a = <-rd.slots[i%len(rd.slots)]:
	case <-rd.timer.C:
		name, seq := rd.stream(ref)
		return nil, fmt.Errorf("mixer: get held message %d of %s: no answer in %v", seq, name, releaseOpTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a.notFound {
		return nil, rd.confirmGone(ctx, ref)
	}
	return a.msg, a.err
}

// confirmGone asks the stream's leader whether a message a direct get did
// not find is really gone: nil if it is, an error if it is there (a replica
// behind; the next round tries again) or the leader does not answer.
func (rd *heldReader) confirmGone(ctx context.Context, ref heldRef) error {
	name, seq := rd.stream(ref)
	ctx, cancel := context.WithTimeout(ctx, releaseOpTimeout)
	defer cancel()
	resp, err := rd.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+name, []byte(fmt.Sprintf(`{"seq":%d}`, seq)))
	if err != nil {
		return fmt.Errorf("mixer: look up held message %d of %s: %w", seq, name, err)
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("mixer: look up held message %d of %s: %w", seq, name, err)
	}
	switch {
	case r.Error == nil:
		return fmt.Errorf("mixer: held message %d of %s: a direct get missed it (a replica behind?)", seq, name)
	case r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil
	default:
		return fmt.Errorf("mixer: look up held message %d of %s: %w", seq, name, r.Error)
	}
}
