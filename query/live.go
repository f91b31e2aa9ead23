package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Live participation: while a wave is open its answers are held back, but
// how many have answered may be shown — as counts of at least the wave's
// threshold, by department, with complementary suppression, each rounded
// down to a multiple of the threshold (k-stepped), so that one submission
// changes a shown count only when it crosses a multiple of k and watching
// the counts does not show each person arrive. The counts come from the
// live bucket, which ingest keeps per department; they hold no answer.

// LiveCounts reads the responses of an open wave so far, per department.
type LiveCounts interface {
	Responded(ctx context.Context, org, wave string) (map[string]int, error)
}

// NewLiveCounts reads live counts from the JetStream live bucket.
func NewLiveCounts(js jetstream.JetStream) LiveCounts { return natsLive{js} }

type natsLive struct{ js jetstream.JetStream }

func (l natsLive) Responded(ctx context.Context, org, wave string) (map[string]int, error) {
	kv, err := l.js.KeyValue(ctx, schemas.WaveLiveBucket(org, wave))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// No invitation yet, or a wave invited before waves had live
		// buckets of their own.
		kv, err = l.js.KeyValue(ctx, schemas.LiveBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("query: live bucket: %w", err)
	}
	w, err := kv.WatchFiltered(ctx, []string{org + "." + wave + ".>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("query: live counts: %w", err)
	}
	defer w.Stop()
	out := map[string]int{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // the current values are all in
				return out, nil
			}
			dept, ok := schemas.LiveDepartment(e.Key())
			n, err := strconv.Atoi(string(e.Value()))
			if !ok || err != nil {
				return nil, fmt.Errorf("query: live count %s is malformed", e.Key())
			}
			out[dept] = n
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// LiveResult is the participation of an open wave so far.
type LiveResult struct {
	Org       string          `json:"org"`
	WaveID    string          `json:"wave_id"`
	ClosesAt  time.Time       `json:"closes_at"`
	Threshold int             `json:"threshold"`
	Overall   Participation   `json:"overall"`
	Groups    []Participation `json:"groups"`
}

// SetLive gives the server its live counts; without them the live
// endpoint answers 503.
func (s *Server) SetLive(l LiveCounts) { s.live = l }

// LiveParticipation returns the participation of an open wave so far.
func (s *Server) LiveParticipation(ctx context.Context, org, waveID string) (LiveResult, error) {
	if !schemas.ValidID(waveID) {
		return LiveResult{}, schemas.Errorf(http.StatusBadRequest, "invalid_id", "wave id is malformed")
	}
	if s.live == nil {
		return LiveResult{}, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "live participation needs the event stream, which this query service does not reach")
	}
	waves, err := s.store.Waves(ctx, org)
	if err != nil {
		return LiveResult{}, err
	}
	i := slices.IndexFunc(waves, func(w WaveInfo) bool { return w.ID == waveID })
	switch {
	case i < 0:
		return LiveResult{}, schemas.Errorf(http.StatusNotFound, "wave_not_found", "wave %s not found", waveID)
	case waves[i].Closed():
		return LiveResult{}, schemas.Errorf(http.StatusConflict, "wave_closed", "wave %s is closed; its participation is at .../participation once released", waveID)
	}
	w := waves[i]
	responded, err := s.live.Responded(ctx, org, w.ID)
	if err != nil {
		return LiveResult{}, err
	}
	sc := Scope{Waves: []WaveInfo{{ID: w.ID, SealSeq: unsealed}}, K: w.threshold(s.guard.K)}
	invited, err := s.store.InvitedBy(ctx, org, sc, "department")
	if err != nil {
		return LiveResult{}, err
	}
	g := Guard{K: sc.K}
	res := LiveResult{Org: org, WaveID: w.ID, ClosesAt: w.ClosesAt, Threshold: sc.K, Groups: []Participation{}}
	total, totalInvited := 0, 0
	for _, n := range responded {
		total += n
	}
	for _, n := range invited {
		totalInvited += n
	}
	// Every decision is made on the stepped counts, so what is shown is a
	// function of them alone: one submission changes it only when it takes
	// its department's count or the total across a multiple of k.
	total = stepped(total, g.K)
	res.Overall = participation("", totalInvited, count(total, total >= g.K))
	names := make([]string, 0, len(invited))
	for d := range invited {
		names = append(names, d)
	}
	slices.Sort(names)
	// On multiples of k, a department's count differs from the total by 0
	// or at least k, and the hidden ones sum to 0 or at least k: the
	// nested-difference and complementary rules hold by themselves, and a
	// department is shown from k up.
	for _, d := range names {
		n := stepped(responded[d], g.K)
		res.Groups = append(res.Groups, participation(d, invited[d], count(n, total >= g.K && n >= g.K)))
	}
	return res, nil
}

// stepped rounds a live count down to a multiple of k.
func stepped(n, k int) int { return n - n%k }

// unsealed bounds a scope that takes every projected row: an open wave has
// no seal yet.
const unsealed = ^uint64(0)

func (s *Server) liveHandler(c *fiber.Ctx) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	res, err := s.LiveParticipation(ctx, c.Params("org"), c.Params("wave"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}
