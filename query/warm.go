package query

import (
	"context"
	"fmt"
	"time"
)

// A released wave never changes, so what its first results need — its
// response types for the guard, and the aggregates of the overview and of
// the department heatmap — is computed as soon as the wave is released,
// in the background, rather than on the first user's request. Warming
// fills caches only: it decides nothing and records nothing.

// sqlOrgs lists the organisations that have waves.
const sqlOrgs = `SELECT DISTINCT org FROM waves`

// WarmInterval is how often Warm looks for newly released waves.
const WarmInterval = time.Second

// Warm computes, for every wave released since its last look, what the
// first requests need, until ctx ends. Errors are logged and retried at
// the next look.
func (s *Server) Warm(ctx context.Context) {
	warmed := map[string]bool{}
	tick := time.NewTicker(WarmInterval)
	defer tick.Stop()
	for {
		if err := s.warmOnce(ctx, warmed); err != nil && ctx.Err() == nil {
			s.log.Warn("warming released waves", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) warmOnce(ctx context.Context, warmed map[string]bool) error {
	rows, err := s.store.ch.Query(ctx, sqlOrgs)
	if err != nil {
		return fmt.Errorf("query: organisations: %w", err)
	}
	var orgs []string
	for rows.Next() {
		var org string
		if err := rows.Scan(&org); err != nil {
			rows.Close()
			return err
		}
		orgs = append(orgs, org)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, org := range orgs {
		waves, err := s.ReleasedWaves(ctx, org)
		if err != nil {
			return err
		}
		for _, w := range waves {
			key := org + "|" + w.ID
			if warmed[key] {
				continue
			}
			start := time.Now()
			if _, err := s.waveTypesOf(ctx, org, w); err != nil {
				return err
			}
			sc := NewScope([]WaveInfo{w}, nil, s.guard.K)
			for _, groupBy := range []string{"", "department"} {
				if _, err := s.scopeDataOf(ctx, org, sc, sc.surveys(), groupBy); err != nil {
					return err
				}
			}
			warmed[key] = true
			s.log.Info("released wave warmed", "org", org, "wave", w.ID, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}
