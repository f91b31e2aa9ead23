package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
func generalise(existing map[schemas.Cohort]int, cohorts []schemas.Cohort, k int) ([]schemas.Cohort, []bool) {
	out := make([]schemas.Cohort, len(cohorts))
	ok := make([]bool, len(cohorts))
	count := func(c schemas.Cohort) int { return existing[c] }
	placed := map[schemas.Cohort][]int{} // by this call
	pending := make([]int, len(cohorts))
	for i := range pending {
		pending[i] = i
	}
	for _, level := range schemas.GeneraliseLadder {
		groups := map[schemas.Cohort][]int{}
		for _, i := range pending {
			g := level(cohorts[i])
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
		top := schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](schemas.Cohort{})
		type group struct {
			cohort  schemas.Cohort
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
			out[i], ok[i] = g, true
		}
	}
	return out, ok
}

func sortedCohorts[V any](m map[schemas.Cohort]V) []schemas.Cohort {
	keys := make([]schemas.Cohort, 0, len(m))
	for c := range m {
		keys = append(keys, c)
	}
	slices.SortFunc(keys, compareCohorts)
	return keys
}

func compareCohorts(a, b schemas.Cohort) int {
	return cmp.Or(cmp.Compare(a.Department, b.Department), cmp.Compare(a.Team, b.Team),
		cmp.Compare(a.Location, b.Location), cmp.Compare(a.TenureBand, b.TenureBand))
}

// cohortsKey is the key, in a wave's own ledger bucket, of how many
// invitations were issued with each stored cohort (storedCohorts). It goes
// with the bucket at the seal.
const cohortsKey = "cohorts"

// storedCohort is one entry of the cohortsKey record.
type storedCohort struct {
	Cohort schemas.Cohort `json:"cohort"`
	N      int            `json:"n"`
}

// storedCohorts reads how many invitations of a wave were issued with each
// stored cohort. The counts never exceed what was issued: they are added
// after the invitations (addStoredCohorts), so a crash in between leaves
// them short, which only makes later invitations more careful.
func (l *Ledger) storedCohorts(ctx context.Context, org, wave string) (map[schemas.Cohort]int, uint64, error) {
	kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(org, wave), false)
	if err != nil {
		return nil, 0, err
	}
	return readStoredCohorts(ctx, kv)
}

// readStoredCohorts reads the cohortsKey record of a wave's ledger bucket;
// revision 0 means there is none.
func readStoredCohorts(ctx context.Context, kv jetstream.KeyValue) (map[schemas.Cohort]int, uint64, error) {
	e, err := kv.Get(ctx, cohortsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return map[schemas.Cohort]int{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("ingest: read the wave's cohorts: %w", err)
	}
	var list []storedCohort
	if err := json.Unmarshal(e.Value(), &list); err != nil {
		return nil, 0, fmt.Errorf("ingest: corrupt record of the wave's cohorts: %w", err)
	}
	out := make(map[schemas.Cohort]int, len(list))
	for _, s := range list {
		out[s.Cohort] += s.N
	}
	return out, e.Revision(), nil
}

// addStoredCohorts adds issued invitations to a wave's cohort counts, with
// compare-and-set, retrying when another writer got there first.
func (l *Ledger) addStoredCohorts(ctx context.Context, org, wave string, add map[schemas.Cohort]int) error {
	if len(add) == 0 {
		return nil
	}
	kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(org, wave), false)
	if err != nil {
		return err
	}
	for range 50 {
		cur, rev, err := l.storedCohorts(ctx, org, wave)
		if err != nil {
			return err
		}
		for c, n := range add {
			cur[c] += n
		}
		list := make([]storedCohort, 0, len(cur))
		for _, c := range sortedCohorts(cur) {
			list = append(list, storedCohort{c, cur[c]})
		}
		val, err := json.Marshal(list)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, cohortsKey, val)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
		} else {
			_, err = kv.Update(ctx, cohortsKey, val, rev)
			if isWrongRevision(err) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("ingest: record the wave's cohorts: %w", err)
		}
		return nil
	}
	return fmt.Errorf("ingest: record the wave's cohorts: too much contention")
}

// countIssued adds issued invitations to their wave's cohort counts. An
// admin that keeps cohorts as given (KeepCohortsForTest) keeps no counts, so
// the seal releases its planted cohorts as they are.
func (a *Admin) countIssued(ctx context.Context, org, wave string, issued map[schemas.Cohort]int) error {
	if a.keepCohorts {
		return nil
	}
	return a.ledger.addStoredCohorts(context.WithoutCancel(ctx), org, wave, issued)
}

// placeCohorts decides the stored cohorts of a wave's new invitees
// (generalise) against those issued before.
func (a *Admin) placeCohorts(ctx context.Context, w Wave, cohorts []schemas.Cohort) ([]schemas.Cohort, []bool, error) {
	if err := a.ledger.EnsureWave(ctx, w.Org, w.ID); err != nil {
		return nil, nil, err
	}
	existing, _, err := a.ledger.storedCohorts(ctx, w.Org, w.ID)
	if err != nil {
		return nil, nil, err
	}
	if a.keepCohorts {
		ok := make([]bool, len(cohorts))
		for i := range ok {
			ok[i] = true
		}
		return slices.Clone(cohorts), ok, nil
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
// the mapped cohorts; for a wave without counts (invited before they were
// kept) it maps nothing.
func releaseCohorts(counts map[schemas.Cohort]int, k int) map[schemas.Cohort]schemas.Cohort {
	short := false
	var all []schemas.Cohort
	for _, c := range sortedCohorts(counts) {
		short = short || counts[c] < k
		for range counts[c] {
			all = append(all, c)
		}
	}
	if !short {
		return nil
	}
	top := schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](schemas.Cohort{})
	stored, ok := generalise(map[schemas.Cohort]int{}, all, k)
	out := map[schemas.Cohort]schemas.Cohort{}
	for i, c := range all {
		to := top
		if ok[i] {
			to = stored[i]
		}
		if to != c {
			out[c] = to
		}
	}
	return out
}

// releaseRemap reads a sealing wave's cohort counts from its ledger bucket
// and returns releaseCohorts of them; nil for a wave without counts.
func releaseRemap(ctx context.Context, js jetstream.JetStream, org, wave string, k int) (map[schemas.Cohort]schemas.Cohort, error) {
	kv, err := js.KeyValue(ctx, schemas.WaveLedgerBucket(org, wave))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixer: the wave's ledger: %w", err)
	}
	counts, rev, err := readStoredCohorts(ctx, kv)
	if err != nil || rev == 0 {
		return nil, err
	}
	return releaseCohorts(counts, k), nil
}

// recohort returns a held event's data with its cohort mapped by remap
// (releaseCohorts), or data itself when nothing maps: only responses and
// comments carry a cohort. An upcast event keeps its (current) version.
func recohort(env schemas.Envelope, data []byte, remap map[schemas.Cohort]schemas.Cohort) ([]byte, error) {
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

func recohortAs[T any](env schemas.Envelope, data []byte, remap map[schemas.Cohort]schemas.Cohort, cohort func(*T) *schemas.Cohort) ([]byte, error) {
	p, err := schemas.DecodePayload[T](env, env.Type)
	if err != nil {
		return nil, err
	}
	to, ok := remap[*cohort(&p)]
	if !ok {
		return data, nil
	}
	*cohort(&p) = to
	if env.Payload, err = json.Marshal(p); err != nil {
		return nil, err
	}
	return env.Marshal()
}
