package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Wave is the catalog's view of a wave.
type Wave struct {
	Org      string
	ID       string
	SurveyID string
	OpensAt  time.Time
	ClosesAt time.Time
	// ReminderDays are the days after opening that reminders go out.
	ReminderDays []int
	// QuestionIDs is the rotated subset of the survey the wave asks; empty
	// asks all.
	QuestionIDs []string
	Closed      bool
	// ClosedAt is when the WaveClosed event was published.
	ClosedAt time.Time
	// Sealed is set once the mixer has released all of the wave's responses.
	Sealed bool
	// Threshold is the wave's reporting threshold, fixed when it opened.
	Threshold int
}

// AcceptsAt reports whether the wave takes responses at t.
func (w Wave) AcceptsAt(t time.Time) bool {
	return !w.Closed && !t.Before(w.OpensAt) && t.Before(w.ClosesAt)
}

type orgKey struct{ org, id string }

// Catalog is an in-memory view of surveys and waves, kept current by an
// ordered consumer of the SurveyPublished, WaveOpened and WaveClosed events.
type Catalog struct {
	mu        sync.RWMutex
	surveys   map[orgKey]schemas.SurveyPublished
	waves     map[orgKey]Wave
	schedules map[orgKey]Schedule
	orgs      map[string]schemas.OrgConfigured
	applied   uint64 // highest stream sequence applied
	changed   chan struct{}
	cc        jetstream.ConsumeContext
	log       *slog.Logger

	// DefaultThreshold is the reporting threshold of organisations that
	// have not set their own; set it before the catalog is used.
	DefaultThreshold int
}

// StartCatalog reads the catalog events from the start of the stream and
// returns once it has caught up with them; it keeps following new ones
// until Stop.
func StartCatalog(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Catalog, error) {
	c := &Catalog{
		surveys:   map[orgKey]schemas.SurveyPublished{},
		waves:     map[orgKey]Wave{},
		schedules: map[orgKey]Schedule{},
		orgs:      map[string]schemas.OrgConfigured{},
		changed:   make(chan struct{}),
		log:       log.With("component", "catalog"),

		DefaultThreshold: schemas.DefaultThreshold,
	}
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return nil, fmt.Errorf("ingest: catalog: %w", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: catalogFilters(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: catalog consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: catalog consumer: %w", err)
	}
	caughtUp := make(chan struct{})
	var once sync.Once
	if info.NumPending == 0 {
		once.Do(func() { close(caughtUp) })
	}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		c.apply(md.Sequence.Stream, m.Data())
		if md.NumPending == 0 {
			once.Do(func() { close(caughtUp) })
		}
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: catalog consume: %w", err)
	}
	select {
	case <-caughtUp:
		return c, nil
	case <-ctx.Done():
		c.Stop()
		return nil, fmt.Errorf("ingest: catalog catch-up: %w", ctx.Err())
	}
}

// catalogFilters match the catalog's events, stored partitioned or not.
func catalogFilters() []string {
	var out []string
	for _, t := range []schemas.EventType{schemas.SurveyPublishedType, schemas.WaveOpenedType, schemas.WaveClosedType,
		schemas.WaveSealedType, schemas.ScheduleSetType, schemas.OrgConfiguredType} {
		out = append(out, schemas.EventFilters(t)...)
	}
	return out
}

// Stop stops following the stream.
func (c *Catalog) Stop() { c.cc.Stop() }

func (c *Catalog) apply(seq uint64, data []byte) {
	env, err := schemas.DecodeEnvelope(data)
	if err == nil {
		err = c.applyEnvelope(env)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// The projector stops on such an event; ingest only needs to
		// know that it cannot use it.
		c.log.Error("catalog skips event", "stream_seq", seq, "err", err)
	}
	c.applied = max(c.applied, seq)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Catalog) applyEnvelope(env schemas.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch env.Type {
	case schemas.SurveyPublishedType:
		s, err := schemas.DecodePayload[schemas.SurveyPublished](env, env.Type)
		if err != nil {
			return err
		}
		c.surveys[orgKey{env.OrgID, s.SurveyID}] = s
	case schemas.WaveOpenedType:
		w, err := schemas.DecodePayload[schemas.WaveOpened](env, env.Type)
		if err != nil {
			return err
		}
		c.waves[orgKey{env.OrgID, w.WaveID}] = Wave{Org: env.OrgID, ID: w.WaveID, SurveyID: w.SurveyID, OpensAt: w.OpensAt, ClosesAt: w.ClosesAt, ReminderDays: w.ReminderDays, QuestionIDs: w.QuestionIDs, Threshold: w.Threshold}
	case schemas.WaveClosedType:
		w, err := schemas.DecodePayload[schemas.WaveClosed](env, env.Type)
		if err != nil {
			return err
		}
		k := orgKey{env.OrgID, w.WaveID}
		if wave, ok := c.waves[k]; ok && !wave.Closed {
			wave.Closed, wave.ClosedAt = true, env.Time
			c.waves[k] = wave
		}
	case schemas.OrgConfiguredType:
		o, err := schemas.DecodePayload[schemas.OrgConfigured](env, env.Type)
		if err != nil {
			return err
		}
		c.orgs[env.OrgID] = o
	case schemas.ScheduleSetType:
		sc, err := schemas.DecodePayload[schemas.ScheduleSet](env, env.Type)
		if err != nil {
			return err
		}
		c.schedules[orgKey{env.OrgID, sc.ScheduleID}] = Schedule{Org: env.OrgID, ScheduleSet: sc}
	case schemas.WaveSealedType:
		w, err := schemas.DecodePayload[schemas.WaveSealed](env, env.Type)
		if err != nil {
			return err
		}
		k := orgKey{env.OrgID, w.WaveID}
		if wave, ok := c.waves[k]; ok {
			wave.Sealed = true
			c.waves[k] = wave
		}
	}
	return nil
}

// WaitFor blocks until the catalog has applied stream sequence seq (the
// sequence a catalog event was published at), or ctx ends.
func (c *Catalog) WaitFor(ctx context.Context, seq uint64) error {
	for {
		c.mu.RLock()
		done, ch := c.applied >= seq, c.changed
		c.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errors.Join(errors.New("ingest: catalog did not catch up"), ctx.Err())
		}
	}
}

// Survey returns a survey definition.
func (c *Catalog) Survey(org, id string) (schemas.SurveyPublished, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.surveys[orgKey{org, id}]
	return s, ok
}

// Waves returns every wave of every organisation.
func (c *Catalog) Waves() []Wave {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Wave, 0, len(c.waves))
	for _, w := range c.waves {
		out = append(out, w)
	}
	return out
}

// Org returns an organisation's settings (zero when never configured).
func (c *Catalog) Org(org string) schemas.OrgConfigured {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.orgs[org]
}

// Threshold returns the reporting threshold a wave of org opened now gets:
// the organisation's own, or DefaultThreshold.
func (c *Catalog) Threshold(org string) int {
	if k := c.Org(org).Threshold; k != 0 {
		return k
	}
	return c.DefaultThreshold
}

// Schedule is a pulse schedule of an organisation.
type Schedule struct {
	Org string
	schemas.ScheduleSet
}

// Schedules returns every pulse schedule.
func (c *Catalog) Schedules() []Schedule {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Schedule, 0, len(c.schedules))
	for _, s := range c.schedules {
		out = append(out, s)
	}
	return out
}

// Wave returns a wave.
func (c *Catalog) Wave(org, id string) (Wave, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w, ok := c.waves[orgKey{org, id}]
	return w, ok
}
