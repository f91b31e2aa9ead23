package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Mixer releases held responses. Ingest stores each accepted response in
// the pending stream, under its wave; nothing of it reaches the event stream
// while the wave is open. Once a wave has closed (by an admin, or by the
// mixer itself when its close time has passed) and a grace period for
// requests in flight has passed, the mixer publishes all of the wave's
// responses to the event stream at once, in a random order, follows them
// with WaveSealed, and purges them from the pending stream.
//
// So the event stream holds a wave's responses in no order that follows
// their submission, all stamped with the same moment, and the invitation
// ledger's "used" times cannot be matched to them.
//
// Every step is idempotent (events keep their ids, and JetStream and the
// projector drop repeats), so a mixer that dies half-way, or two mixers at
// once, publish each response once.
type Mixer struct {
	js      jetstream.JetStream
	catalog *Catalog
	log     *slog.Logger
	now     func() time.Time
	// Grace is how long after a wave's close the mixer waits for requests
	// that were accepted just before it.
	Grace time.Duration
	// Interval is how often the mixer looks for waves to close and seal.
	Interval time.Duration
	// Remind, when set, sends a wave's reminders (Admin.Remind); the mixer
	// calls it on each of the wave's reminder days.
	Remind func(ctx context.Context, org, wave string) (int, error)
	// Invite, when set, invites the audience of a wave a schedule opened
	// (Admin.InviteRoster).
	Invite func(ctx context.Context, org, wave string, aud Audience) (Invited, error)
	// Sealer opens the held responses that ingest encrypted; nil reads
	// only unencrypted ones.
	Sealer *Sealer
	// Reader, when set, is a JetStream on a NATS connection of its own,
	// on which the seal reads held messages. A NATS server answers a
	// client connection's direct gets one at a time, in the read loop that
	// also takes that connection's publishes: on a connection of their own
	// the seal's reads run beside its publishes instead of between them.
	Reader jetstream.JetStream
	// Ledger, when set, opens waves' own buckets with its replica count;
	// without it they are opened with one replica.
	Ledger *Ledger
	// Hook, when set, runs after each step of a seal; an error stops the
	// seal there, as a crash would. Tests use it to crash at every step.
	Hook func(org, wave string, step SealStep) error

	// finished holds the sealed waves this process has seen through the
	// last step of their seal.
	finished map[string]bool
}

// SealStep names a step of a seal, in order. A seal interrupted at any of
// them is finished by the next round of any mixer: the steps before
// WaveSealed are idempotent and repeated; those after it are repeated for
// every sealed wave once per process, so a crash between WaveSealed and the
// last step leaves nothing behind for good.
type SealStep string

const (
	// SealPublishing: the first held response is published.
	SealPublishing SealStep = "publishing"
	// SealPublished: every held response is published.
	SealPublished SealStep = "published"
	// SealMarked: WaveSealed is published.
	SealMarked SealStep = "marked"
	// SealPurgedPending: the held responses are purged.
	SealPurgedPending SealStep = "purged-pending"
	// SealForgotLedger: the wave's invitations and slots are purged from the ledger.
	SealForgotLedger SealStep = "forgot-ledger"
	// SealForgotInvitees: which slot was whose is purged.
	SealForgotInvitees SealStep = "forgot-invitees"
	// SealForgotLive: the live counts are purged.
	SealForgotLive SealStep = "forgot-live"
)

// step runs the hook after a step.
func (m *Mixer) step(org, wave string, s SealStep) error {
	if m.Hook == nil {
		return nil
	}
	return m.Hook(org, wave, s)
}

// NewMixer returns a mixer with a 10s grace period, checking every second.
func NewMixer(js jetstream.JetStream, catalog *Catalog, log *slog.Logger, now func() time.Time) *Mixer {
	return &Mixer{js: js, catalog: catalog, log: log.With("component", "mixer"), now: now, Grace: 10 * time.Second, Interval: time.Second,
		finished: map[string]bool{}}
}

// Run opens scheduled waves, sends reminders, closes overdue waves and
// seals closed ones until ctx ends.
func (m *Mixer) Run(ctx context.Context) error {
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// tick does one round: errors are logged and retried next round.
func (m *Mixer) tick(ctx context.Context) {
	now := m.now()
	for _, sc := range m.catalog.Schedules() {
		if err := m.openDue(ctx, sc, now); err != nil && ctx.Err() == nil {
			m.log.Error("schedule round failed; retrying", "org", sc.Org, "schedule", sc.ScheduleID, "err", err)
		}
	}
	for _, w := range m.catalog.Waves() {
		var err error
		switch {
		case w.Sealed && m.finished[w.Org+"/"+w.ID]:
			continue
		case w.Sealed:
			// Sealed, perhaps by a mixer that crashed before the last
			// step: finish it (every step is idempotent).
			if err = m.finish(ctx, w.Org, w.ID); err == nil {
				m.finished[w.Org+"/"+w.ID] = true
			}
		case !w.Closed && !now.Before(w.ClosesAt):
			err = closeWave(ctx, m.js, m.catalog, w.Org, w.ID, now)
			if err == nil {
				m.log.Info("wave closed on time", "org", w.Org, "wave", w.ID)
			}
		case w.Closed && now.Sub(w.ClosedAt) >= m.Grace:
			err = m.Seal(ctx, w.Org, w.ID)
		case !w.Closed && m.Remind != nil:
			err = m.remindDue(ctx, w, now)
		}
		if err != nil && ctx.Err() == nil {
			m.log.Error("mixer round failed; retrying", "org", w.Org, "wave", w.ID, "err", err)
		}
	}
}

// remindDue sends the reminders of a wave whose reminder day has come,
// once per day: a marker in the invitee bucket records each sent round.
func (m *Mixer) remindDue(ctx context.Context, w Wave, now time.Time) error {
	for _, d := range w.ReminderDays {
		if now.Before(w.OpensAt.AddDate(0, 0, d)) {
			continue
		}
		kv, err := m.invitees(ctx, w.Org, w.ID)
		if err != nil {
			return err
		}
		marker := fmt.Sprintf("reminder.%d", d)
		if _, err := kv.Create(ctx, marker, []byte(now.UTC().Format(time.RFC3339))); errors.Is(err, jetstream.ErrKeyExists) {
			continue // sent already
		} else if err != nil {
			return err
		}
		n, err := m.Remind(ctx, w.Org, w.ID)
		if err != nil {
			_ = kv.Delete(ctx, marker) // try again next round
			return err
		}
		m.log.Info("reminders sent", "org", w.Org, "wave", w.ID, "day", d, "reminded", n)
	}
	return nil
}

// invitees opens a wave's own invitee bucket, which holds the markers of
// reminders sent and scheduled invitations done.
func (m *Mixer) invitees(ctx context.Context, org, wave string) (jetstream.KeyValue, error) {
	if m.Ledger != nil {
		return m.Ledger.Invitees(ctx, org, wave)
	}
	return m.js.CreateOrUpdateKeyValue(ctx, schemas.WaveBucketConfig(schemas.WaveInviteeBucket(org, wave), 1))
}

// forgetInvitees deletes which slot was whose, and the markers, of a
// sealed wave recorded before waves had buckets of their own (the wave's
// own bucket goes with forgetWave): afterwards not even who answered is
// on record.
func (m *Mixer) forgetInvitees(ctx context.Context, org, wave string) error {
	return purgeWave(ctx, m.js, schemas.InviteeBucket, org, wave)
}

// Seal publishes every held response of a closed wave to the event stream in
// random order (release), then WaveSealed, then purges the wave's pending
// subject and forgets its invitees.
//
// The release of a large wave takes as long as it takes (a million
// responses, tens of seconds): there is no deadline on the whole seal, only
// on each of its operations, and a long release logs its progress. The
// steps after it are a few deletions, bounded together by sealTailTimeout.
func (m *Mixer) Seal(ctx context.Context, org, wave string) error {
	remap, err := m.remap(ctx, org, wave)
	if err != nil {
		return err
	}
	n, err := m.release(ctx, org, wave, remap)
	if err != nil {
		return err
	}
	if err := m.step(org, wave, SealPublished); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sealTailTimeout)
	defer cancel()
	seal, err := schemas.NewEnvelope(schemas.WaveSealedType, org, m.now(), schemas.WaveSealed{WaveID: wave})
	if err != nil {
		return err
	}
	seal.ID = schemas.SealEventID(org, wave)
	seq, err := publish(ctx, m.js, seal)
	if err != nil {
		return err
	}
	if err := m.step(org, wave, SealMarked); err != nil {
		return err
	}
	if err := m.finish(ctx, org, wave); err != nil {
		return err
	}
	m.log.Info("wave sealed", "org", org, "wave", wave, "responses", n)
	return m.catalog.WaitFor(ctx, seq)
}

// remap is how the seal re-cohorts the wave's responses (releaseRemap).
func (m *Mixer) remap(ctx context.Context, org, wave string) (map[schemas.CohortKey]schemas.Cohort, error) {
	// No deadline on the whole count: it reads the wave's ledger, an entry
	// per link and slot (readBucket bounds the wait between entries).
	w, _ := m.catalog.Wave(org, wave)
	remap, err := releaseRemap(ctx, m.js, org, wave, w.Threshold)
	if err != nil {
		return nil, err
	}
	if len(remap) > 0 {
		m.log.Warn("some stored cohorts are held by fewer invitations than the threshold (an invitation round cut short); their responses are released under coarser cohorts",
			"org", org, "wave", wave, "cohorts", len(remap))
	}
	return remap, nil
}

// sealTailTimeout bounds the steps of a seal after the release: WaveSealed,
// finish and the catalog catching up.
const sealTailTimeout = 2 * time.Minute

// finish does the steps after WaveSealed: purges the wave's held
// responses, its invitations and slots in the ledger, which slot was
// whose, and its live counts. Each is idempotent.
func (m *Mixer) finish(ctx context.Context, org, wave string) error {
	pending, err := m.js.Stream(ctx, schemas.PendingStream)
	if err != nil {
		return fmt.Errorf("mixer: %w", err)
	}
	subject := schemas.PendingSubject(org, wave)
	if err := pending.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("mixer: purge %s: %w", subject, err)
	}
	if err := m.step(org, wave, SealPurgedPending); err != nil {
		return err
	}
	if err := forgetWave(ctx, m.js, org, wave); err != nil {
		return err
	}
	if err := m.step(org, wave, SealForgotLedger); err != nil {
		return err
	}
	if err := m.forgetInvitees(ctx, org, wave); err != nil {
		return err
	}
	if err := m.step(org, wave, SealForgotInvitees); err != nil {
		return err
	}
	if err := forgetLive(ctx, m.js, org, wave); err != nil {
		return err
	}
	return m.step(org, wave, SealForgotLive)
}
