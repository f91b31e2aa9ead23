package main

import (
	"fmt"
	"slices"
	"strings"
)

// The report's parts for the guard's decision, the first request after a
// wave is sealed and the open-loop heatmap load (issue 10, item 7).

const (
	guardGoalMS = 50.0
	firstGoalMS = 100.0
	loadGoalRPS = 300
	loadGoalMS  = 50.0
)

func (r *report) largestGuard() (guardResult, bool) {
	if len(r.guard) == 0 {
		return guardResult{}, false
	}
	return r.guard[len(r.guard)-1], true
}

// worstFirst is the slowest first request (median over runs) of every
// query size, with its name and size.
func (r *report) worstFirst() (float64, string, bool) {
	worst, what := 0.0, ""
	for _, set := range r.queries {
		for _, f := range set.first {
			if m := f.ms.median(); m > worst {
				worst, what = m, fmt.Sprintf("%s at %d waves", f.name, set.waves)
			}
		}
	}
	return worst, what, what != ""
}

func (r *report) guardGoals(p func(string, ...any)) {
	if g, ok := r.largestGuard(); ok {
		worst := g.warmP99.median()
		what := fmt.Sprintf("warm repeat p99 %.2f ms", worst)
		if g.refineFound {
			worst = max(worst, g.refineP99.median())
			what += fmt.Sprintf(", refining p99 %.2f ms", g.refineP99.median())
		} else {
			what += ", refining: none found (see section 6)"
		}
		p("| guard decision p99 at most 50 ms with a record of %s served results | %s; record %s bytes | %s |", thousands(g.results), what, thousands(int(g.recordBytes.median())), verdict(worst <= guardGoalMS))
	}
	if worst, what, ok := r.worstFirst(); ok {
		p("| first request after a wave is sealed at most 100 ms at %s answer rows a wave | slowest %.0f ms (%s) | %s |", thousands(r.sizes.responded*10), worst, what, verdict(worst <= firstGoalMS))
	}
	if len(r.load) > 0 {
		best := sustained(r.load, loadGoalMS)
		p("| at least 300 warm heatmap requests/s with p99 at most 50 ms | %d requests/s sustained (highest offered rate with no errors, at least 95%% served and p99 ≤ 50 ms) | %s |", best, verdict(best >= loadGoalRPS))
	}
}

func (r *report) guardSection(p func(string, ...any)) {
	if len(r.guard) == 0 {
		return
	}
	g := r.guard[0]
	p("## 6. Guard decision")
	p("")
	p("The cost of one decision of the anonymity guard (package `query/guard`) for one organisation, against the real record store: `guard.Run` (read the record, `guard.Decide`, compare-and-set) on `query.NewRecordStore` over the bucket `trustpulse_guard` of the harness's embedded NATS server (file storage; the harness is the NATS server's process, so a key-value round trip is loopback TCP within one process).")
	p("")
	p("- Universe (fixed seed): %d waves of an organisation of %s employees in twelve departments of skewed size, up to six teams each (skewed), five locations and four tenure bands (uneven weights); each wave about %.0f%% answer, so a wave has %d to %d response types (%s in all), k = %d.", guardWaves, thousands(guardStaff), 100*guardAnswerP, g.typesMin, g.typesMax, thousands(g.typesInAll), guardK)
	p("- Requests (a different random sequence each run, a fresh organisation each run): 15%% trends (one result per wave, unfiltered or filtered by 1-2 attributes); the rest the scores of one wave or of a pooled period of 2-4 waves, unfiltered or filtered by 1-3 attributes, 70%% of them grouped by an attribute not filtered on. Each result's cells are built as `query` builds them (`Scores.sets`, `decideSets`): the organisation overall when filtered, the scope, then the groups from the largest, groups below k or hidden by complementary suppression left out. Cells per request: median %d, at most %d.", g.cellsP50, g.cellsMax)
	p("- The record is grown by serving that many results through `guard.Run`; then further decisions are timed: **warm**, %d requests served before, again (nothing new: a read and `Decide`, no write); **refining**, up to %d new random requests that `Decide` says change the record (a read, `Decide` and the compare-and-set write), the record put back as it was after each (untimed), so that every sample refines the same record. Latencies are per decision; each figure is the median of %d runs with the spread.", r.sizes.guard.warmN, r.sizes.guard.refineN, r.cfg.rounds)
	p("")
	p("| results served | of which refined the record | cells served | record bytes stored (gzipped JSON) | JSON bytes | atoms (all waves) | warm p50 / p99 ms | `Decide` alone p50 ms | refining p50 / p99 ms | encoding the record p50 ms | decoding it p50 ms |")
	p("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.guard {
		ref := "none found"
		if x.refineFound {
			ref = x.refineP50.format("", 2) + " / " + x.refineP99.format("", 2)
		}
		p("| %s | %s%% | %s%% | %s | %s | %s | %s / %s | %s | %s | %s | %s |", thousands(x.results), x.refinedShare.format("", 1), x.servedShare.format("", 0),
			x.recordBytes.format("", 0), x.jsonBytes.format("", 0), x.atoms.format("", 0), x.warmP50.format("", 2), x.warmP99.format("", 2), x.decideP50.format("", 3), ref, x.encodeP50.format("", 2), x.decodeP50.format("", 2))
	}
	p("")
	first, last := r.guard[0], r.guard[len(r.guard)-1]
	p("The record is the partition of each wave's response types that the served cells induce, so it is bounded by the number of types (%s), not by the number of results: %s bytes after %s results, %s after %s. A decision reads the record (one key-value get; a replica decodes it only when its revision changed, which the \"decoding\" column costs), aligns the partitions of the waves its cells touch and refines them; its cost follows the cells and the waves they touch, not the results served before.", thousands(first.typesInAll), thousands(int(first.recordBytes.median())), thousands(first.results), thousands(int(last.recordBytes.median())), thousands(last.results))
	p("")
}

func (r *report) firstSection(p func(string, ...any)) {
	if len(r.queries) == 0 || len(r.queries[0].first) == 0 {
		return
	}
	p("## 7. First request after a wave is sealed")
	p("")
	p("The first overview and the first department heatmap of the latest wave (%s answer rows a wave) on a query process that has never served it: for each run a query process of its own is started beside the harness's (same NATS, ClickHouse and record), makes one request that warms its connections and token cache without touching the wave (`GET /waves`), and then the wave's request is timed through HTTP. Nothing the wave determines is in its caches — the aggregates and the guard's response types are computed on this request — as on the first request after the seal releases the wave. ClickHouse and the operating system have read the wave before (the drain and section 3), so their caches are warm. Median of %d runs with the spread. The long-running query process's first overview of the wave in section 3 is given beside it.", thousands(r.sizes.responded*10), r.cfg.rounds)
	p("")
	p("| answer rows (waves) | overview, first request ms | on the running process ms | heatmap (by department), first request ms | caches off p50 ms (section 3): overview / heatmap | bare SQL p50 ms: overview / heatmap |")
	p("|---|---|---|---|---|---|")
	for _, set := range r.queries {
		if len(set.first) < 2 || len(set.results) < 2 {
			continue
		}
		running := "–"
		if len(set.results[0].apiFirst) > 0 {
			running = fmt.Sprintf("%.0f", ms(set.results[0].apiFirst[0]))
		}
		p("| %s (%d) | %s | %s | %s | %.0f / %.0f | %.0f / %.0f |", thousands(set.answerRows), set.waves, set.first[0].ms.format("", 0), running, set.first[1].ms.format("", 0),
			set.results[0].coldP50, set.results[1].coldP50, set.results[0].bareP50, set.results[1].bareP50)
	}
	p("")
	if big := r.largest(); len(big.results) >= 2 {
		p("Where the time goes (bare SQL at %s answer rows, the slowest statements of one uncached request):", thousands(big.answerRows))
		p("")
		p("- overview: %s.", slowest(big.results[0], 3))
		p("- heatmap: %s.", slowest(big.results[1], 3))
		p("")
	}
}

func (r *report) loadSection(p func(string, ...any)) {
	if len(r.load) == 0 {
		return
	}
	p("## 8. Warm heatmap under open-loop load")
	p("")
	p("`GET %s` (the department heatmap of the latest wave, at %s answer rows in all) through the query process's HTTP API with an analyst token, after section 3 warmed it: every request repeats a served result, so it is the aggregates from memory, one read of the guard's record and a decision that changes nothing. Open loop: requests start on a fixed schedule (request i at i/rate), each on its own connection if need be, whatever became of the earlier ones; latency is from the scheduled start to the last byte, so a late dispatcher counts against the figure. %s at each rate, the ladder run %d times; the load generator runs on the same two cores as the query process, NATS and ClickHouse. Query CPU is the query process's user and system time over the step, per request offered.", r.loadPath, thousands(r.loadRows), r.sizes.loadFor, r.cfg.rounds)
	p("")
	p("| offered requests/s | served requests/s | p50 ms | p99 ms | errors | query CPU ms/request | harness CPU ms/request (load generator, NATS) |")
	p("|---|---|---|---|---|---|---|")
	for _, s := range r.load {
		errs := make([]string, len(s.errors))
		for i, e := range s.errors {
			errs[i] = fmt.Sprint(e)
		}
		p("| %d | %s | %s | %s | %s | %s | %s |", s.rate, s.achieved.format("", 0), s.p50.format("", 1), s.p99.format("", 1), strings.Join(errs, ", "), s.cpuMS.format("", 2), s.selfMS.format("", 2))
	}
	p("")
	var logged []string
	for _, s := range r.load {
		keys := make([]string, 0, len(s.logged))
		for k := range s.logged {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			logged = append(logged, fmt.Sprintf("at %d/s, %d × %s", s.rate, s.logged[k], k))
		}
	}
	if len(logged) > 0 {
		p("Errors the query process logged during the load (all runs): %s.", strings.Join(logged, "; "))
	} else {
		p("The query process logged no errors during the load.")
	}
	p("")
	for _, s := range r.load {
		if s.profile != nil {
			r.profileTable(p, *s.profile)
		}
	}
}

// guardNotes explain the new goals when missed.
func (r *report) guardNotes(p func(string, ...any)) {
	if g, ok := r.largestGuard(); ok {
		worst := g.warmP99.median()
		if g.refineFound {
			worst = max(worst, g.refineP99.median())
		}
		if worst > guardGoalMS {
			p("- **Guard decision p99 %.1f ms at %s results.** `Decide` alone takes %.3f ms at the median and a warm decision %.2f ms; a refining one writes the whole record: `Record.Marshal` (gzip of %s bytes of JSON that repeat every wave's type keys) takes %.1f ms at the median, and every other replica decodes it again (%.1f ms) on its next read. The record's size is bounded (it does not grow with results), but it holds every wave's types in full, so each write costs in proportion to all waves' types, not to the waves the decision touched, and on two loaded cores the tail of that (allocation, GC, gzip) reaches the p99. What would close it, in `query` and `query/guard` (not in the harness): keep the record per wave (one key per organisation and wave, or the encoded partitions of untouched waves kept and reused), so a write encodes only the waves it refined; store a sealed wave's types once (they never change) and only the atom labels in the record; a cheaper encoding than gzipped JSON for the labels.", worst, thousands(g.results), g.decideP50.median(), g.warmP50.median(), thousands(int(g.jsonBytes.median())), g.encodeP50.median(), g.decodeP50.median())
		}
		if !g.refineFound {
			p("- **No refining request at %s results.** Of the random requests tried, none changed the record: its partition is as fine as the invariant allows for such requests, so every further one is served from the record's atoms or refused, and the write path no longer happens.", thousands(g.results))
		}
	}
	if worst, what, ok := r.worstFirst(); ok && worst > firstGoalMS {
		big := r.largest()
		reason := ""
		if len(big.results) >= 2 {
			reason = " Its SQL alone (bare, section 3) takes " + fmt.Sprintf("%.0f ms for the heatmap", big.results[1].bareP50) + "; the slowest statements: " + slowest(big.results[1], 2) + "."
		}
		p("- **First request after the seal: %.0f ms (%s), above 100 ms.** The first request computes everything a released wave determines: the guard's response types of the wave (a `uniqExact(response_id)` per cohort type over the wave's answer rows) and the result's aggregates, on ClickHouse 18.16 at %s answer rows a wave.%s The next step is to compute these when the wave is sealed rather than on the first request: the projector (or the query service, on the seal event) computes the wave's response types and the common results' aggregates (overview, the heatmap by each attribute) once and keeps them durably (a table in ClickHouse or a key-value entry per wave), so that the first request reads them like a cached one; a per-response table of cohorts (one row per response rather than one per answer) would cut the type count's read by ten.", worst, what, thousands(r.sizes.responded*10), reason)
	}
	if len(r.load) > 0 {
		if best := sustained(r.load, loadGoalMS); best < loadGoalRPS {
			cpu := 0.0
			for _, s := range r.load {
				if s.cpuMS.median() > 0 {
					cpu = s.cpuMS.median()
					break
				}
			}
			p("- **Warm heatmap throughput: %d requests/s with p99 ≤ 50 ms, below 300.** At the lowest rate the query process spends %.2f ms of CPU per request (the guard's share of it is small: a warm decision is about 1 ms, section 6), so its CPU alone would allow several hundred requests/s on two idle cores; but the two cores are shared with the harness (load generator and NATS), ClickHouse and, during this run, other work on the machine (the load average above). The query process's logged errors, if any, are listed under the table: a time-out reading the projector's checkpoint or the wave list points at the cache of the wave list and checkpoint (query/cache.go, kept for a second): when it expires, every request in flight misses it together and queries ClickHouse (16 connections at most), so under load the refresh piles up once a second; one refresh at a time (single-flight, the others served the entry being refreshed) would remove those stalls, and the same holds for the token cache (5 s).", best, cpu)
		}
	}
}
