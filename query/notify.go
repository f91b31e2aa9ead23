package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Notifier emails every manager whose team's result is served a
// single-use sign-in link to the dashboard ("your team's results are
// ready"), once per sealed wave. It follows WaveSealed events on a durable
// consumer; for a released wave it asks the guard, as the query API would,
// for each manager's subtree (reports_to = the manager), and for each one
// served mints a sign-in link (SignIns) and queues the email in the outbox,
// which ingest's postman sends.
//
// Each email is queued under a Nats-Msg-Id of its wave and manager, and a
// marker in the sign-in bucket records it queued; the WaveSealed event is
// acked only once every manager's email is. A notifier that dies between
// the outbox and the ack is redelivered the event (after AckWait, within
// the outbox's duplicate window) and queues nothing twice.
type Notifier struct {
	q  *Server
	js jetstream.JetStream
	// people reads the roster (the people bucket).
	people  *Directory
	signins *SignIns
	log     *slog.Logger
	now     func() time.Time
	// LinkBase is the public base URL of the dashboard: links are
	// LinkBase/dashboard/signin/<token>.
	LinkBase string
	// AckWait is how long a delivered WaveSealed waits for its ack before
	// it is delivered again (it must stay well inside the outbox's
	// duplicate window, schemas.DedupWindow).
	AckWait time.Duration
	// hook, when set (SetHook), runs after each step of one manager's
	// email; an error stops the notifier there, the event unacked, as a
	// crash would.
	hookMu sync.Mutex
	hook   func(org, wave, personID string, step NotifyStep) error
}

// SetHook sets the hook that runs after each step of one manager's email
// (tests crash the notifier with it); an error it returns stops Run there
// without acking the wave's WaveSealed.
func (n *Notifier) SetHook(h func(org, wave, personID string, step NotifyStep) error) {
	n.hookMu.Lock()
	defer n.hookMu.Unlock()
	n.hook = h
}

// NotifyStep names a step of one manager's email, in order.
type NotifyStep string

const (
	// NotifyMinted: the sign-in link is stored.
	NotifyMinted NotifyStep = "minted"
	// NotifyQueued: the email is in the outbox.
	NotifyQueued NotifyStep = "queued"
	// NotifyMarked: the marker records it queued.
	NotifyMarked NotifyStep = "marked"
)

// NewNotifier returns a notifier over the query service q.
func NewNotifier(q *Server, js jetstream.JetStream, linkBase string, log *slog.Logger) *Notifier {
	return &Notifier{q: q, js: js, people: NewDirectory(js), signins: NewSignIns(js, time.Now), log: log.With("component", "notifier"), now: time.Now,
		LinkBase: strings.TrimSuffix(linkBase, "/"), AckWait: time.Minute}
}

// Run follows the sealed waves until ctx ends.
// A consumer that cannot be created (NATS down) is retried every few
// seconds.
func (n *Notifier) Run(ctx context.Context) error {
	var cons jetstream.Consumer
	for {
		var err error
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err = n.js.CreateOrUpdateConsumer(cctx, schemas.EventStream, jetstream.ConsumerConfig{
			Durable:        schemas.NotifierConsumer,
			FilterSubjects: schemas.EventFilters(schemas.WaveSealedType),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        n.AckWait,
			MaxDeliver:     -1,
			MaxAckPending:  1,
		})
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		n.log.Error("notifier consumer not created; retrying", "err", err)
		sleep(ctx, 5*time.Second)
	}
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("notifier fetch failed", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for m := range msgs.Messages() {
			if !n.handle(ctx, m) {
				return errStopped
			}
		}
	}
	return nil
}

// errStopped is a hook's stop: the event is left unacked.
var errStopped = errors.New("notifier: stopped by hook")

// handle emails one sealed wave's managers and decides, in this one place,
// whether the event is acked (done, or nothing to do) or delivered again.
// It returns false when the hook stopped the notifier.
func (n *Notifier) handle(ctx context.Context, m jetstream.Msg) bool {
	env, err := schemas.DecodeEnvelope(m.Data())
	var sealed schemas.WaveSealed
	if err == nil {
		sealed, err = schemas.DecodePayload[schemas.WaveSealed](env, env.Type)
	}
	if err != nil {
		n.log.Error("notifier skips an unreadable WaveSealed", "err", err)
		_ = m.Term()
		return true
	}
	if n.now().Sub(env.Time) > schemas.SignInLifetime {
		_ = m.Ack() // sealed long ago (a store older than the notifier): no news
		return true
	}
	md, _ := m.Metadata()
	sent, err := n.NotifyWave(ctx, env.OrgID, sealed.WaveID)
	var appErr *schemas.Error
	switch {
	case err == nil:
		n.log.Info("managers told their results are ready", "org", env.OrgID, "wave", sealed.WaveID, "emails", sent)
		_ = m.Ack()
	case errors.Is(err, errStopped):
		return false // as a crash: no ack, delivered again after AckWait
	case ctx.Err() != nil:
		// Shutting down: no ack, delivered again after AckWait.
	case errors.As(err, &appErr) && (appErr.Code == "results_pending" || appErr.Code == "wave_not_found"):
		_ = m.NakWithDelay(time.Second) // the projector has not caught up with the seal yet
	default:
		delay := time.Duration(min(int64(md.NumDelivered), 8)) * 5 * time.Second
		n.log.Error("could not tell managers their results are ready; will retry", "org", env.OrgID, "wave", sealed.WaveID, "retry_in", delay, "err", err)
		_ = m.NakWithDelay(delay)
	}
	return true
}

// NotifyWave emails every manager of org whose subtree's result in a
// released wave the guard serves, unless emailed already, and returns how
// many it queued now. A wave not released yet is a 503 results_pending
// (or 404 wave_not_found) *schemas.Error from ReleasedWave.
func (n *Notifier) NotifyWave(ctx context.Context, org, wave string) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	w, err := n.q.ReleasedWave(rctx, org, wave)
	cancel()
	if err != nil {
		return 0, err
	}
	managers, err := n.managers(ctx, org)
	if err != nil {
		return 0, err
	}
	counts, err := n.q.store.LineRespondents(ctx, org, w)
	if err != nil {
		return 0, err
	}
	sc := NewScope([]WaveInfo{w}, nil, n.q.guard.K)
	// Only managers with at least K respondents below them can be served;
	// the largest subtrees first, as the guard would be asked top down.
	var ids []string
	for id := range managers {
		if counts[id] >= sc.K {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	// One decision of the guard over every candidate subtree, largest
	// first, against the record as it is, and written nowhere: the emails
	// are consistent with each other and with everything served so far,
	// and they take nothing from what can still be served to others.
	sets := make([]servedSet, len(ids))
	for i, id := range ids {
		sets[i] = servedSet{ref: id, waves: []WaveInfo{w}, pred: []Clause{{Attr: ReportsTo, Values: []string{id}}}}
	}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	served, err := n.q.wouldServe(dctx, org, sets)
	dcancel()
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, id := range ids {
		if !served[id] {
			continue
		}
		queued, err := n.notify(ctx, org, wave, managers[id])
		if err != nil {
			return sent, err
		}
		if queued {
			sent++
		}
	}
	return sent, nil
}

// notify queues one manager's email for a wave unless the marker says it
// is queued already; it reports whether it queued it now.
func (n *Notifier) notify(ctx context.Context, org, wave string, p schemas.Person) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := n.signins.bucket(ctx)
	if err != nil {
		return false, err
	}
	marker := schemas.SignInSentKey(org, wave, p.PersonID)
	e, err := kv.Get(ctx, marker)
	switch {
	case err == nil && string(e.Value()) == schemas.SignInQueued:
		return false, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if _, err := kv.Create(ctx, marker, []byte(schemas.SignInQueueing)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("notifier: marker: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("notifier: marker: %w", err)
	}
	// Queueing, perhaps by an attempt that died before the marker: queue
	// again under the same message id; the outbox keeps the first.
	token, expires, err := n.signins.Mint(ctx, org, wave, p.PersonID)
	if err != nil {
		return false, err
	}
	if err := n.step(org, wave, p.PersonID, NotifyMinted); err != nil {
		return false, err
	}
	letter := schemas.Letter{Org: org, WaveID: wave, Kind: schemas.LetterResultsReady, To: p.Email, Name: p.Name,
		Link: n.LinkBase + "/dashboard/signin/" + token, ClosesAt: expires}
	data, err := json.Marshal(letter)
	if err != nil {
		return false, err
	}
	if _, err := n.js.Publish(ctx, schemas.OutboxSubject(org, wave), data, jetstream.WithMsgID(schemas.ResultsReadyMsgID(org, wave, p.PersonID))); err != nil {
		return false, fmt.Errorf("notifier: queue email: %w", err)
	}
	if err := n.step(org, wave, p.PersonID, NotifyQueued); err != nil {
		return false, err
	}
	if _, err := kv.Put(ctx, marker, []byte(schemas.SignInQueued)); err != nil {
		return false, fmt.Errorf("notifier: marker: %w", err)
	}
	return true, n.step(org, wave, p.PersonID, NotifyMarked)
}

func (n *Notifier) step(org, wave, personID string, s NotifyStep) error {
	n.hookMu.Lock()
	h := n.hook
	n.hookMu.Unlock()
	if h == nil {
		return nil
	}
	if err := h(org, wave, personID, s); err != nil {
		return fmt.Errorf("%w: %w", errStopped, err)
	}
	return nil
}

// managers reads the roster's managers of org by person id: everyone
// someone in the roster reports to, who has not left and has an email.
func (n *Notifier) managers(ctx context.Context, org string) (map[string]schemas.Person, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	people, err := n.people.People(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	out := map[string]schemas.Person{}
	for _, p := range people {
		if p.LeftOn != "" || p.ManagerPersonID == "" {
			continue
		}
		if m, ok := people[p.ManagerPersonID]; ok && m.LeftOn == "" && m.Email != "" {
			out[m.PersonID] = m
		}
	}
	return out, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
