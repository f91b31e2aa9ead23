package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// e2eResult is one wave taken from its close to its first served
// overview, with every part of the product running.
type e2eResult struct {
	responses int
	// closeToSealed runs from the close request until the harness's
	// catalog sees WaveSealed: the grace, the mixer's next round and the
	// release. sealedToProjected runs on until the projector's checkpoint
	// covers WaveSealed, projectedToServed until the query process first
	// serves the wave's overview (it keeps its list of waves for up to
	// 1 s). total is the sum: the close request to the first 200.
	closeToSealed, sealedToProjected, projectedToServed, total time.Duration
}

// benchCloseToServed runs rounds waves of n responses each from the close
// to the first served overview, as users meet it: an ingest process (its
// mixer seals), a projector process and a query process all running on
// the machine's two cores. Each wave's n·1.05 invitations are published
// to the event stream and projected first, as they are long before a
// close; its n responses are held, encrypted, in the wave's held stream,
// as ingest holds them (submissions themselves are section 1's).
func benchCloseToServed(ctx context.Context, e *env, n, rounds int) ([]e2eResult, error) {
	s, sealer, keyFile, err := sealSetup(e)
	if err != nil {
		return nil, err
	}
	token, _, err := e.admin.IssueToken(ctx, benchOrg, schemas.RoleAnalyst, "trustbench-e2e")
	if err != nil {
		return nil, err
	}
	query, ok := e.procs["query"]
	if !ok {
		if query, err = e.startAs(ctx, "query-e2e", "query"); err != nil {
			return nil, err
		}
		defer e.stop("query-e2e")
	}
	if _, err := e.startAs(ctx, "projector-e2e", "projector"); err != nil {
		return nil, err
	}
	defer e.stop("projector-e2e")
	if _, err := e.startAs(ctx, "ingest-e2e", "ingest", "--seal-key-file", keyFile); err != nil {
		return nil, err
	}
	defer e.stop("ingest-e2e")
	var out []e2eResult
	for round := range rounds {
		r, err := closeToServed(ctx, e, s, sealer, query.addr, token, n, round)
		if err != nil {
			return nil, fmt.Errorf("close to served, %d responses, round %d: %w", n, round, err)
		}
		e.log.Info("close to served", "responses", n, "round", round, "close_to_sealed_s", r.closeToSealed.Seconds(),
			"sealed_to_projected_s", r.sealedToProjected.Seconds(), "projected_to_served_s", r.projectedToServed.Seconds(), "total_s", r.total.Seconds())
		out = append(out, r)
	}
	return out, nil
}

func closeToServed(ctx context.Context, e *env, s schemas.SurveyPublished, sealer *ingest.Sealer, queryAddr, token string, n, round int) (e2eResult, error) {
	r := e2eResult{responses: n}
	wave := fmt.Sprintf("e2e-%d-%d", n, round)
	now := time.Now().UTC()
	if err := e.admin.OpenWave(ctx, benchOrg, schemas.WaveOpened{WaveID: wave, SurveyID: s.SurveyID, OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(24 * time.Hour)}); err != nil {
		return r, err
	}
	if err := e.ledger.EnsureWave(ctx, benchOrg, wave); err != nil {
		return r, err
	}
	rng := rand.New(rand.NewPCG(51, uint64(round)))
	staff := people(rng, n*105/100)
	p := &publisher{js: e.js}
	for _, person := range staff {
		env, err := schemas.NewEnvelope(schemas.InvitationIssuedType, benchOrg, now, schemas.InvitationIssued{WaveID: wave, Cohort: person.cohort})
		if err != nil {
			return r, err
		}
		if err := p.publish(env); err != nil {
			return r, err
		}
	}
	if err := p.flush(); err != nil {
		return r, err
	}
	day := now.Truncate(24 * time.Hour)
	if err := fillHeld(e, sealer, wave, n, func(i int) (schemas.Envelope, error) {
		return responseEvent(s, wave, day, staff[i], answers(rng, s, staff[i].bias))
	}); err != nil {
		return r, err
	}
	// Everything before the close is projected first (in a full run, the
	// seal stage's waves too), as in a running organisation.
	events, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return r, err
	}
	last := events.CachedInfo().State.LastSeq
	e.log.Info("close to served: wave ready, projecting what came before", "wave", wave, "last_seq", last)
	if err := waitCheckpoint(ctx, e, last, 20*time.Minute); err != nil {
		return r, err
	}

	start := time.Now()
	if err := closeAndWait(ctx, e, e.procs["ingest-e2e"], wave); err != nil {
		return r, err
	}
	r.closeToSealed = time.Since(start)
	sealed, err := events.GetLastMsgForSubject(ctx, schemas.Subject(benchOrg, schemas.WaveSealedType))
	if err != nil {
		return r, fmt.Errorf("WaveSealed: %w", err)
	}
	if env, err := schemas.DecodeEnvelope(sealed.Data); err != nil || env.ID != schemas.SealEventID(benchOrg, wave) {
		return r, fmt.Errorf("the last WaveSealed (stream_seq %d) is not %s's (%v)", sealed.Sequence, wave, err)
	}
	if err := waitCheckpoint(ctx, e, sealed.Sequence, 20*time.Minute); err != nil {
		return r, err
	}
	r.sealedToProjected = time.Since(start) - r.closeToSealed
	if _, err := waitServed(ctx, queryAddr, token, endpoints(wave)[0].path); err != nil {
		return r, err
	}
	r.total = time.Since(start)
	r.projectedToServed = r.total - r.closeToSealed - r.sealedToProjected
	if err := checkSealed(ctx, e, wave, n*10); err != nil {
		return r, err
	}
	return r, nil
}
