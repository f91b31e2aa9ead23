package main

import (
	"fmt"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
)

// The report's parts for ingest: closed-loop throughput beside the raw
// publish limit under the same fsync setting (section 1), and an
// open-loop overload (section 10; issue 12, items 4 and 10).

const (
	ingestHeading   = "## 1. Ingest"
	overloadHeading = "## 10. Ingest under open-loop overload"
	overloadGoalMB  = 200
)

// syncSetup describes the harness's NATS server's fsync setting.
func (r *report) syncSetup() string {
	if r.cfg.syncAlways() {
		return "`--nats-sync always`: every write fsynced before it is acknowledged, as `trustpulse serve`'s embedded server does by default"
	}
	return "`--nats-sync interval`: fsync every 2 minutes, NATS's default"
}

func (r *report) ingestGoals(p func(string, ...any)) {
	best, ok := r.bestIngest()
	if !ok {
		return
	}
	limit, how := best.limit()
	ratio := best.pageRate.median() / limit
	p("| ingest at least 0.5x raw JetStream publishes with ack, both `--nats-sync %s` | %.2fx at concurrency %d (%.0f/s posted after the survey page against %.0f/s raw on %s; posted cold %.2fx) | %s |",
		syncName(r.cfg.syncAlways()), ratio, best.concurrency, best.pageRate.median(), limit, how, best.rate.median()/limit, verdict(ratio >= 0.5))
}

func (r *report) ingestSection(p func(string, ...any)) {
	sync, other := syncName(r.cfg.syncAlways()), syncName(!r.cfg.syncAlways())
	p(ingestHeading)
	p("")
	r.ingestRun.aloneLine(p, "ingest", fmt.Sprintf(", the harness's NATS server at `--nats-sync %s`", sync))
	p("Survey submissions through the ingest process's real HTTP path (`POST /v1/responses`), %d per run, by a closed-loop load generator with that many concurrent clients, two ways. **Cold**: fresh links posted as an API client would, so the post looks the link up in the invitation ledger (three key-value reads), claims its slot by compare-and-set and publishes with ack to the wave's held stream. **After the page**: fresh links whose survey pages (`GET /s/<token>`) were opened first, untimed, as an employee opening the emailed link does; ingest keeps the page's read of the link (ingest/linkcache.go), so the timed post is the claim's compare-and-set and the publish, no read. Beside each, the limit: `js.Publish` with ack of the same payload (a response envelope) to a file-storage stream of the same server, at the same concurrency, under the harness's setting, %s; measured with every client on one shared connection and with a connection of each client's own (as `nats bench` does). The ratio is the after-the-page rate over the higher of the two. The last column is the shared limit measured right after on a second embedded NATS server in the harness's process, alike but for the other setting (`--nats-sync %s`): what fsync costs a publish.", r.sizes.perRun, r.syncSetup(), other)
	p("")
	p("| concurrency | cold submissions/s | p50 / p99 ms | after the page submissions/s | p50 / p99 ms | raw publishes/s, shared connection | p50 / p99 ms | raw publishes/s, connection per client | p50 / p99 ms | ratio (after the page) | ratio (cold) | raw publishes/s, `--nats-sync %s` |", other)
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.ingest {
		limit, _ := x.limit()
		p("| %d | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s | %s / %s | %.2fx | %.2fx | %s |", x.concurrency,
			x.rate.format("", 0), x.p50.format("", 1), x.p99.format("", 1),
			x.pageRate.format("", 0), x.pageP50.format("", 1), x.pageP99.format("", 1),
			x.limitRate.format("", 0), x.limitP50.format("", 2), x.limitP9.format("", 2),
			x.ownRate.format("", 0), x.ownP50.format("", 2), x.ownP99.format("", 2),
			x.pageRate.median()/limit, x.rate.median()/limit, x.altRate.format("", 0))
	}
	p("")
	for _, x := range r.ingest {
		if x.profile != nil {
			r.profileTable(p, *x.profile)
		}
	}
}

// overloadPeak is the step with the highest peak RSS.
func (r *report) overloadPeak() (overloadStep, bool) {
	if len(r.overload) == 0 {
		return overloadStep{}, false
	}
	peak := r.overload[0]
	for _, s := range r.overload {
		if s.peakRSS > peak.peakRSS {
			peak = s
		}
	}
	return peak, true
}

func (r *report) overloadGoals(p func(string, ...any)) {
	peak, ok := r.overloadPeak()
	if !ok {
		return
	}
	p("| ingest RSS under open-loop overload stays under %d MB | highest %.0f MB (VmHWM at %d/s offered; highest offered %d/s) | %s |",
		overloadGoalMB, peak.peakRSS, peak.rate, r.overload[len(r.overload)-1].rate, verdict(peak.peakRSS < overloadGoalMB))
}

func (r *report) overloadSection(p func(string, ...any)) {
	if len(r.overload) == 0 {
		return
	}
	best, _ := r.bestIngest()
	p(overloadHeading)
	p("")
	r.ingestRun.aloneLine(p, "ingest", fmt.Sprintf(", the harness's NATS server at `--nats-sync %s`", syncName(r.cfg.syncAlways())))
	p("Survey submissions offered to an ingest process of its own (`bin/trustpulse serve --target ingest --max-inflight %d`, the default) on a fixed schedule, an open loop as in section 8: submission i starts at i/rate whatever became of the earlier ones, on a connection of its own if none is free. The rates are multiples of the best cold closed-loop rate of section 1 (%.0f/s at concurrency %d; the overload posts fresh links cold), rounded to 50, each for %s, once; every submission carries a fresh invitation, issued before its step. Beyond %d submissions being recorded at once ingest answers 503 `unavailable` with Retry-After and records nothing. **Sent/s** is the rate the load generator managed to start them at (it shares the two cores with ingest and NATS); accepted and 503 per second are over the step, from the first scheduled start to the last answer; latencies are from each submission's scheduled start to its answer. **Peak RSS** is the process's VmHWM over the step (reset through `/proc/<pid>/clear_refs` before it); VmRSS was also sampled every 100 ms. **Ingest CPU** is the process's user and system time over the step per second of it (2 would be both cores); **harness CPU** likewise for the harness's process, which holds the load generator and the NATS server.",
		ingest.DefaultMaxInFlight, best.rate.median(), best.concurrency, r.sizes.overloadFor, ingest.DefaultMaxInFlight)
	p("")
	p("| offered/s | sent/s | accepted (202)/s | 503/s | other answers | 202 p50 / p99 ms | 503 p50 / p99 ms | ingest CPU | harness CPU | RSS before MB | peak RSS MB (VmHWM) | highest sampled VmRSS MB |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range r.overload {
		secs := max(s.window, time.Millisecond).Seconds()
		hwm := fmt.Sprintf("%.0f", s.peakRSS)
		if !s.hwmReset {
			hwm += " (not reset: the process's peak so far)"
		}
		p("| %d | %.0f | %.0f | %.0f | %d | %s | %s | %.2f | %.2f | %.0f | %s | %.0f |", s.rate, s.sent, s.acceptedRate(), float64(s.busy)/secs, s.other,
			pair(s.accepted, s.p50, s.p99), pair(s.busy, s.busyP50, s.busyP99), s.cpu, s.harnessCPU, s.baseRSS, hwm, s.sampledRSS)
	}
	p("")
	busy, noRetry := 0, 0
	for _, s := range r.overload {
		busy, noRetry = busy+s.busy, noRetry+s.noRetryAfter
		if s.other > 0 {
			p("Other answers at %d/s: %d, the first: `%s`.", s.rate, s.other, s.firstOther)
			p("")
		}
	}
	if busy > 0 {
		p("Of the %s 503s, %s came without a Retry-After header.", thousands(busy), thousands(noRetry))
		p("")
	}
	// Accepted work should level off beyond capacity, not fall.
	for i := 1; i < len(r.overload); i++ {
		a, b := r.overload[i-1], r.overload[i]
		if b.acceptedRate() < 0.8*a.acceptedRate() {
			p("Accepted submissions per second fell from %.0f at %d/s offered to %.0f at %d/s (ingest at %.2f of a core, the harness at %.2f). This harness does not break down where the time went: the two cores are shared by ingest (which reads and decodes every submission before it refuses one), the load generator (which sends and answers every rejected one too), the NATS server that records the accepted ones (both in the harness's process) and the machine's other work (the load average above).",
				a.acceptedRate(), a.rate, b.acceptedRate(), b.rate, b.cpu, b.harnessCPU)
			p("")
			break
		}
	}
	p("Before the in-flight bound, driven open-loop at 2,500 submissions/s, ingest accepted work without bound: p50 latency 5 s and RSS 444 MB (issue 12, item 10); those figures are from the issue, not from this harness.")
	p("")
}

// spliceIngest writes the ingest sections (1 and 10) and their goal rows
// into an existing report, leaving everything else as it was.
func spliceIngest(path string, r *report) error {
	return splice(path, "ingest", r.ingestRun, []part{
		{heading: ingestHeading, goalPrefix: "| ingest at least 0.5x raw", section: r.ingestSection, goals: r.ingestGoals},
		{heading: overloadHeading, goalPrefix: "| ingest RSS under open-loop overload", section: r.overloadSection, goals: r.overloadGoals},
	})
}

// acceptedRate is the 202s per second over the step.
func (s overloadStep) acceptedRate() float64 {
	return float64(s.accepted) / max(s.window, time.Millisecond).Seconds()
}

// pair prints two latencies "p50 / p99", or a dash if there were none.
func pair(n int, a, b float64) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f / %.1f", a, b)
}
