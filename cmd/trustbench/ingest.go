package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// ingestResult is one concurrency level of the ingest benchmark.
type ingestResult struct {
	concurrency       int
	requests          int
	rate, p50, p99    runs // submissions/s, ms
	limitRate         runs // raw JetStream publishes with ack, /s
	limitP50, limitP9 runs
	// altRate is limitRate on a NATS server with the other fsync setting.
	altRate runs
}

// benchIngest measures survey submissions through the ingest process's
// HTTP path (token check, single-use claim, durable publish) at several
// concurrency levels, and beside each, raw JetStream publishes with ack of
// the same payload at the same concurrency: the limit, on the same NATS
// server (so under the same fsync setting) and, for comparison, on one
// with the other setting.
func benchIngest(ctx context.Context, e *env, levels []int, perRun, rounds int) ([]ingestResult, error) {
	s, err := survey()
	if err != nil {
		return nil, err
	}
	ing := e.procs["ingest"]
	now := time.Now().UTC()
	if err := e.admin.OpenWave(ctx, benchOrg, schemas.WaveOpened{WaveID: "ingest-bench", SurveyID: s.SurveyID, OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(24 * time.Hour)}); err != nil {
		return nil, err
	}
	alt, err := e.altJetStream()
	if err != nil {
		return nil, err
	}
	// The limit's stream: file storage like the pending stream.
	for _, js := range []jetstream.JetStream{e.js, alt} {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_LIMIT", Subjects: []string{"bench.limit.>"}, Storage: jetstream.FileStorage}); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	staff := people(rng, 2000)
	var out []ingestResult
	for _, c := range levels {
		r := ingestResult{concurrency: c, requests: perRun}
		for round := range rounds {
			bodies, err := submissions(ctx, e, s, staff, perRun, rng)
			if err != nil {
				return nil, err
			}
			rate, lat, err := load(c, bodies, func(body []byte) error {
				resp, err := httpClient.Post("http://"+ing.addr+"/v1/responses", "application/json", bytes.NewReader(body))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b, _ := io.ReadAll(resp.Body)
					return fmt.Errorf("submit: %s %s", resp.Status, b)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				return nil
			})
			if err != nil {
				return nil, err
			}
			r.rate, r.p50, r.p99 = append(r.rate, rate), append(r.p50, ms(lat.quantile(.5))), append(r.p99, ms(lat.quantile(.99)))
			payload, err := limitPayload(s, staff[0], rng)
			if err != nil {
				return nil, err
			}
			payloads := make([][]byte, perRun)
			for i := range payloads {
				payloads[i] = payload
			}
			subject := fmt.Sprintf("bench.limit.%d.%d", c, round)
			rate, lat, err = load(c, payloads, func(p []byte) error {
				_, err := e.js.Publish(ctx, subject, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.limitRate, r.limitP50, r.limitP9 = append(r.limitRate, rate), append(r.limitP50, ms(lat.quantile(.5))), append(r.limitP9, ms(lat.quantile(.99)))
			altRate, _, err := load(c, payloads, func(p []byte) error {
				_, err := alt.Publish(ctx, subject, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.altRate = append(r.altRate, altRate)
			e.log.Info("ingest round", "concurrency", c, "round", round, "submissions_per_s", int(r.rate[round]), "limit_per_s", int(rate),
				"limit_"+syncName(!e.syncAlways)+"_per_s", int(altRate))
		}
		out = append(out, r)
	}
	return out, nil
}

// submissions issues n invitations and returns a submission body for each.
func submissions(ctx context.Context, e *env, s schemas.SurveyPublished, staff []benchPerson, n int, rng *rand.Rand) ([][]byte, error) {
	cohorts := make([]schemas.Cohort, n)
	bias := make([]float64, n)
	for i := range cohorts {
		p := staff[rng.IntN(len(staff))]
		cohorts[i], bias[i] = p.cohort, p.bias
	}
	// Issued by four workers: issuing is not what is measured.
	tokens := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := w*n/4, (w+1)*n/4
			toks, err := e.admin.IssueInvitations(ctx, benchOrg, "ingest-bench", cohorts[lo:hi])
			copy(tokens[lo:], toks)
			errs[w] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	bodies := make([][]byte, n)
	for i, tok := range tokens {
		bodies[i], _ = json.Marshal(map[string]any{"token": tok, "answers": answers(rng, s, bias[i])})
	}
	return bodies, nil
}

// limitPayload is a response as the pending stream holds it.
func limitPayload(s schemas.SurveyPublished, p benchPerson, rng *rand.Rand) ([]byte, error) {
	env, err := responseEvent(s, "ingest-bench", time.Now().UTC(), p, answers(rng, s, p.bias))
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// load runs do over items with c workers (a closed loop: each worker sends
// its next item when the last is answered) and returns the rate per second
// and each item's latency.
func load(c int, items [][]byte, do func([]byte) error) (float64, latencies, error) {
	lat := make(latencies, len(items))
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t := time.Now()
				if err := do(items[i]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	for i := range items {
		work <- i
	}
	close(work)
	wg.Wait()
	return float64(len(items)) / time.Since(start).Seconds(), lat, firstErr
}
