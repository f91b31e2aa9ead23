package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// generalise decides the cohort stored for each of a wave's new invitees so
// that every cohort stored with the wave's invitations — those issued before
// (existing: stored cohort → invitees) and these — is shared by at least k
// invitees. It returns, in the order of cohorts, each one's stored cohort,
// and ok[i] false for those that cannot be placed in a group of k (they are
// not to be invited now).
//
// The rule, deterministic and independent of the order of cohorts:
//
//  1. Walk schemas.GeneraliseLadder from level 0. At each level, group the
//     invitees not yet placed by their cohort at that level; a group whose
//     stored cohort then has k or more invitees (the group, plus those
//     placed there before, by this call or earlier ones) is placed there.
//     The rest go on to the next level.
//  2. Whoever is left after the last level (everything generalised) is
//     short of k. Whole groups this call placed under cohorts nobody else
//     holds are moved to the last level with them, smallest first, until
//     there are k; if that is not enough, they stay unplaced.
//
// Counts only ever grow: an invitation once issued keeps its cohort, so a
// group that reached k keeps k whatever later calls do, and two calls at
// once can only be more careful than one (each counts what the other has
// stored, or not yet).
func generalise(existing map[schemas.CohortKey]int, cohorts []schemas.Cohort, k int) ([]schemas.Cohort, []bool) {
	out := make([]schemas.Cohort, len(cohorts))
	ok := make([]bool, len(cohorts))
	count := func(c schemas.CohortKey) int { return existing[c] }
	placed := map[schemas.CohortKey][]int{} // by this call
	pending := make([]int, len(cohorts))
	for i := range pending {
		pending[i] = i
	}
	for _, level := range schemas.GeneraliseLadder {
		groups := map[schemas.CohortKey][]int{}
		for _, i := range pending {
			g := level(cohorts[i]).Key()
			groups[g] = append(groups[g], i)
		}
		pending = pending[:0]
		for _, g := range sortedCohorts(groups) {
			members := groups[g]
			if len(members)+count(g)+len(placed[g]) >= k {
				placed[g] = append(placed[g], members...)
			} else {
				pending = append(pending, members...)
			}
		}
	}
	if len(pending) > 0 {
		top := schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](schemas.Cohort{}).Key()
		type group struct {
			cohort  schemas.CohortKey
			members []int
		}
		var movable []group
		for g, members := range placed {
			if g != top && count(g) == 0 {
				movable = append(movable, group{g, members})
			}
		}
		slices.SortFunc(movable, func(a, b group) int {
			return cmp.Or(cmp.Compare(len(a.members), len(b.members)), compareCohorts(a.cohort, b.cohort))
		})
		have := len(pending) + count(top) + len(placed[top])
		var moved []group
		for _, g := range movable {
			if have >= k {
				break
			}
			moved = append(moved, g)
			have += len(g.members)
		}
		if have >= k {
			for _, g := range moved {
				delete(placed, g.cohort)
				placed[top] = append(placed[top], g.members...)
			}
			placed[top] = append(placed[top], pending...)
		}
	}
	for g, members := range placed {
		for _, i := range members {
			out[i], ok[i] = g.Cohort(), true
		}
	}
	return out, ok
}

func sortedCohorts[V any](m map[schemas.CohortKey]V) []schemas.CohortKey {
	keys := make([]schemas.CohortKey, 0, len(m))
	for c := range m {
		keys = append(keys, c)
	}
	slices.SortFunc(keys, compareCohorts)
	return keys
}

func compareCohorts(a, b schemas.CohortKey) int {
	return cmp.Or(cmp.Compare(a.Department, b.Department), cmp.Compare(a.Team, b.Team),
		cmp.Compare(a.Location, b.Location), cmp.Compare(a.TenureBand, b.TenureBand),
		cmp.Compare(a.Managers, b.Managers), cmp.Compare(a.Manager, b.Manager))
}

// keepCohortsKey marks, in a wave's own ledger bucket, a wave whose
// cohorts a test stored as planted (Admin.KeepCohortsForTest): the seal
// releases them as they are.
const keepCohortsKey = "test.cohorts-as-planted"

// issuedCohorts counts a wave's invitations per stored cohort from its own
// ledger bucket: one per response slot (a reminder's link shares its
// invitation's slot). It reads what was issued, not a tally kept beside it,
// so an invitation round cut short by a crash at any point is counted as
// far as it got: a retry places the rest against it, and the seal sees it.
// keep reports the keepCohortsKey mark.
func issuedCohorts(ctx context.Context, kv jetstream.KeyValue) (counts map[schemas.CohortKey]int, keep bool, err error) {
	entries, err := readBucket(ctx, kv, ">")
	if err != nil {
		return nil, false, fmt.Errorf("ingest: read the wave's ledger: %w", err)
	}
	slots := map[string]schemas.Cohort{}
	for key, val := range entries {
		switch {
		case key == keepCohortsKey:
			keep = true
			continue
		case strings.HasPrefix(key, "slot."), strings.HasPrefix(key, "test."):
			continue
		}
		var inv schemas.Invitation
		if err := json.Unmarshal(val, &inv); err != nil {
			return nil, false, fmt.Errorf("ingest: corrupt ledger entry: %w", err)
		}
		slots[inv.Slot] = inv.Cohort
	}
	counts = map[schemas.CohortKey]int{}
	for _, c := range slots {
		counts[c.Key()]++
	}
	return counts, keep, nil
}

// placeCohorts decides the stored cohorts of a wave's new invitees
// (generalise) against the invitations issued before.
func (a *Admin) placeCohorts(ctx context.Context, w Wave, cohorts []schemas.Cohort) ([]schemas.Cohort, []bool, error) {
	if err := a.ledger.EnsureWave(ctx, w.Org, w.ID); err != nil {
		return nil, nil, err
	}
	kv, err := a.ledger.waveBucket(ctx, schemas.WaveLedgerBucket(w.Org, w.ID), false)
	if err != nil {
		return nil, nil, err
	}
	if a.keepCohorts {
		if _, err := kv.Put(ctx, keepCohortsKey, []byte("true")); err != nil {
			return nil, nil, err
		}
		ok := make([]bool, len(cohorts))
		for i := range ok {
			ok[i] = true
		}
		return slices.Clone(cohorts), ok, nil
	}
	existing, _, err := issuedCohorts(ctx, kv)
	if err != nil {
		return nil, nil, err
	}
	out, ok := generalise(existing, cohorts, w.Threshold)
	return out, ok, nil
}

// releaseCohorts is the seal's last line of defence: it maps each stored
// cohort of a wave that fewer than k invitations hold — which only an
// invitation round cut short by a crash, and never retried, leaves behind
// — to one that k or more hold. It runs generalise over the wave's
// invitations as if they were all invited now, with their stored cohorts
// as their own: cohorts of k or more stay as they are (unless the smallest
// of them must join the last few in the fully generalised cohort), the
// others are generalised. A wave of fewer than k invitations is released
// under the fully generalised cohort. The mixer releases responses under
// the mapped cohorts.
func releaseCohorts(counts map[schemas.CohortKey]int, k int) map[schemas.CohortKey]schemas.Cohort {
	short := false
	var all []schemas.Cohort
	for _, c := range sortedCohorts(counts) {
		short = short || counts[c] < k
		for range counts[c] {
			all = append(all, c.Cohort())
		}
	}
	if !short {
		return nil
	}
	top := schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](schemas.Cohort{})
	stored, ok := generalise(map[schemas.CohortKey]int{}, all, k)
	out := map[schemas.CohortKey]schemas.Cohort{}
	for i, c := range all {
		to := top
		if ok[i] {
			to = stored[i]
		}
		if !to.Equal(c) {
			out[c.Key()] = to
		}
	}
	return out
}

// releaseRemap counts a sealing wave's invitations from its ledger bucket
// (issuedCohorts) and returns releaseCohorts of them; nil for a wave whose
// ledger is gone or whose cohorts a test planted.
func releaseRemap(ctx context.Context, js jetstream.JetStream, org, wave string, k int) (map[schemas.CohortKey]schemas.Cohort, error) {
	kv, err := js.KeyValue(ctx, schemas.WaveLedgerBucket(org, wave))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixer: the wave's ledger: %w", err)
	}
	counts, keep, err := issuedCohorts(ctx, kv)
	if err != nil || keep {
		return nil, err
	}
	return releaseCohorts(counts, k), nil
}

// recohort returns a held event's data with its cohort mapped by remap
// (releaseCohorts), or data itself when nothing maps: only responses and
// comments carry a cohort. An upcast event keeps its (current) version.
func recohort(env schemas.Envelope, data []byte, remap map[schemas.CohortKey]schemas.Cohort) ([]byte, error) {
	if len(remap) == 0 {
		return data, nil
	}
	switch env.Type {
	case schemas.ResponseSubmittedType:
		return recohortAs[schemas.ResponseSubmitted](env, data, remap, func(p *schemas.ResponseSubmitted) *schemas.Cohort { return &p.Cohort })
	case schemas.CommentSubmittedType:
		return recohortAs[schemas.CommentSubmitted](env, data, remap, func(p *schemas.CommentSubmitted) *schemas.Cohort { return &p.Cohort })
	}
	return data, nil
}

func recohortAs[T any](env schemas.Envelope, data []byte, remap map[schemas.CohortKey]schemas.Cohort, cohort func(*T) *schemas.Cohort) ([]byte, error) {
	p, err := schemas.DecodePayload[T](env, env.Type)
	if err != nil {
		return nil, err
	}
	to, ok := remap[cohort(&p).Key()]
	if !ok {
		return data, nil
	}
	*cohort(&p) = to
	if env.Payload, err = json.Marshal(p); err != nil {
		return nil, err
	}
	return env.Marshal()
}
