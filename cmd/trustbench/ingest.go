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
	concurrency int
	requests    int
	// rate, p50 and p99 are submissions posted with fresh links, as an
	// API client would: the post reads the ledger (submissions/s, ms).
	rate, p50, p99 runs
	// pageRate, pageP50 and pageP99 are submissions posted after each
	// link's survey page was opened, as employees do: the page's read of
	// the link is kept, so the post reads nothing.
	pageRate, pageP50, pageP99 runs
	// limitRate is raw JetStream publishes with ack, all clients sharing
	// one connection (/s); ownRate the same with a connection of each
	// client's own, as `nats bench` runs them.
	limitRate, limitP50, limitP9 runs
	ownRate, ownP50, ownP99      runs
	// altRate is limitRate on a NATS server with the other fsync setting.
	altRate runs
	// profile is ingest's CPU profile during the first after-the-page
	// run, taken at the highest concurrency only.
	profile *savedProfile
}

// limit is the higher of the two raw limits (median): the one the goal is
// measured against.
func (r ingestResult) limit() (rate float64, how string) {
	if r.ownRate.median() > r.limitRate.median() {
		return r.ownRate.median(), "a connection per client"
	}
	return r.limitRate.median(), "one shared connection"
}

// benchIngest measures survey submissions through the ingest process's
// HTTP path (token check, single-use claim, durable publish) at several
// concurrency levels, twice: with fresh links posted cold, and posted
// after their survey pages were opened (untimed), as employees do. Beside
// each, raw JetStream publishes with ack of the same payload at the same
// concurrency, on one shared connection and on a connection per client:
// the limit, on the same NATS server (so under the same fsync setting)
// and, for comparison, on one with the other setting.
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
	submit := func(_ int, body []byte) error {
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
	}
	openPage := func(_ int, token []byte) error {
		resp, err := httpClient.Get("http://" + ing.addr + "/s/" + string(token))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("survey page: %s", resp.Status)
		}
		return nil
	}
	rng := rand.New(rand.NewPCG(11, 12))
	staff := people(rng, 2000)
	var out []ingestResult
	for _, c := range levels {
		r := ingestResult{concurrency: c, requests: perRun}
		own, closeOwn, err := e.connections(c)
		if err != nil {
			return nil, err
		}
		for round := range rounds {
			_, bodies, err := submissions(ctx, e, s, staff, perRun, rng)
			if err != nil {
				return nil, err
			}
			rate, lat, err := load(c, bodies, submit)
			if err != nil {
				return nil, err
			}
			r.rate, r.p50, r.p99 = append(r.rate, rate), append(r.p50, ms(lat.quantile(.5))), append(r.p99, ms(lat.quantile(.99)))

			tokens, bodies, err := submissions(ctx, e, s, staff, perRun, rng)
			if err != nil {
				return nil, err
			}
			if _, _, err := load(c, tokens, openPage); err != nil {
				return nil, err
			}
			var finish func() (savedProfile, error)
			if round == 0 && c == levels[len(levels)-1] {
				finish = e.profiling(ctx, ing, fmt.Sprintf("ingest-c%d", c), fmt.Sprintf("the first after-the-page run at concurrency %d", c), 2*time.Second)
			}
			rate, lat, err = load(c, bodies, submit)
			if err != nil {
				return nil, err
			}
			if finish != nil {
				sp, err := finish()
				if err != nil {
					return nil, err
				}
				r.profile = &sp
			}
			r.pageRate, r.pageP50, r.pageP99 = append(r.pageRate, rate), append(r.pageP50, ms(lat.quantile(.5))), append(r.pageP99, ms(lat.quantile(.99)))

			payload, err := limitPayload(s, staff[0], rng)
			if err != nil {
				return nil, err
			}
			payloads := make([][]byte, perRun)
			for i := range payloads {
				payloads[i] = payload
			}
			subject := fmt.Sprintf("bench.limit.%d.%d", c, round)
			rate, lat, err = load(c, payloads, func(_ int, p []byte) error {
				_, err := e.js.Publish(ctx, subject, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.limitRate, r.limitP50, r.limitP9 = append(r.limitRate, rate), append(r.limitP50, ms(lat.quantile(.5))), append(r.limitP9, ms(lat.quantile(.99)))
			ownRate, lat, err := load(c, payloads, func(w int, p []byte) error {
				_, err := own[w].Publish(ctx, subject, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.ownRate, r.ownP50, r.ownP99 = append(r.ownRate, ownRate), append(r.ownP50, ms(lat.quantile(.5))), append(r.ownP99, ms(lat.quantile(.99)))
			altRate, _, err := load(c, payloads, func(_ int, p []byte) error {
				_, err := alt.Publish(ctx, subject, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			r.altRate = append(r.altRate, altRate)
			e.log.Info("ingest round", "concurrency", c, "round", round, "submissions_per_s", int(r.rate[round]),
				"after_page_per_s", int(r.pageRate[round]), "limit_shared_per_s", int(rate), "limit_own_per_s", int(ownRate),
				"limit_"+syncName(!e.syncAlways)+"_per_s", int(altRate))
		}
		closeOwn()
		out = append(out, r)
	}
	return out, nil
}

// submissions issues n invitations and returns their tokens and a
// submission body for each.
func submissions(ctx context.Context, e *env, s schemas.SurveyPublished, staff []benchPerson, n int, rng *rand.Rand) (tokens, bodies [][]byte, err error) {
	cohorts := make([]schemas.Cohort, n)
	bias := make([]float64, n)
	for i := range cohorts {
		p := staff[rng.IntN(len(staff))]
		cohorts[i], bias[i] = p.cohort, p.bias
	}
	// Issued by four workers: issuing is not what is measured.
	toks := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := w*n/4, (w+1)*n/4
			// A key-value write can time out (5 s) while the NATS
			// server is busy with the step before; the chunk is issued
			// again, whole (the invitations of a failed try are never
			// used). A run of three failures ends the benchmark.
			for try := 1; ; try++ {
				issued, err := e.admin.IssueInvitations(ctx, benchOrg, "ingest-bench", cohorts[lo:hi])
				if err == nil {
					copy(toks[lo:], issued)
					return
				}
				if try == 3 || ctx.Err() != nil {
					errs[w] = err
					return
				}
				e.log.Warn("issuing invitations failed; issuing the chunk again", "try", try, "issued", len(issued), "of", hi-lo, "err", err)
				time.Sleep(5 * time.Second)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	tokens, bodies = make([][]byte, n), make([][]byte, n)
	for i, tok := range toks {
		tokens[i] = []byte(tok)
		bodies[i], _ = json.Marshal(map[string]any{"token": tok, "answers": answers(rng, s, bias[i])})
	}
	return tokens, bodies, nil
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
// and each item's latency. do is given its worker's number, 0 to c-1.
func load(c int, items [][]byte, do func(worker int, item []byte) error) (float64, latencies, error) {
	lat := make(latencies, len(items))
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t := time.Now()
				if err := do(w, items[i]); err != nil {
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
