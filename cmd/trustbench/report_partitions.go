package main

import (
	"fmt"
	"strings"
)

// The report's part for the partitioned projection (issue 13, item 3).

// partitionRun is the partitions stage's results and the circumstances of
// its run.
type partitionRun struct {
	results []partitionResult
	stageRun
}

const partitionHeading = "## 11. Partitioned projection"

func (r *report) partitionSection(p func(string, ...any)) {
	if len(r.partitions.results) == 0 {
		return
	}
	p(partitionHeading)
	p("")
	r.partitions.aloneLine(p, "partitions", " (2 cores, shared with other work while it ran, so the figures are a floor and their spread is wide)")
	x := r.partitions.results[0]
	p("Draining a backlog with the event stream split into N partitions by organisation (`--projector-partitions N`, JetStream's `partition(N,1)` subject mapping). The backlog is %d organisations' sealed waves: for each an opened wave, its close and its seal, and %s responses (%s answer rows) in all, the organisations' responses interleaved; no invitations. For each N the stream is created anew split into N and the backlog published once; then, in each of %d runs, the projection is emptied and N `bin/trustpulse serve --target projector --projector-partitions N --projector-partition-ids i` processes are started, one per partition, and the time until every partition's checkpoint reaches its last event is taken (including the processes' start-up). Every run is checked to hold each event and answer row exactly once. Median and spread over the runs.",
		partitionOrgs, thousands(x.answerRow/10), thousands(x.answerRow), len(x.eventsPerSec))
	p("")
	p("| partitions | events per partition | events/s | answer rows/s | speed-up |")
	p("|---|---|---|---|---|")
	base := x.rowsPerSec.median()
	for _, x := range r.partitions.results {
		shares := make([]string, len(x.perPartition))
		for i, n := range x.perPartition {
			shares[i] = thousands(n)
		}
		p("| %d | %s | %s | %s | %.2fx |", x.partitions, strings.Join(shares, " / "), x.eventsPerSec.format("", 0), x.rowsPerSec.format("", 0), x.rowsPerSec.median()/base)
	}
	p("")
	p("%s", partitionNote())
	p("")
	for i := 1; i < len(r.partitions.results); i++ {
		a, b := r.partitions.results[i-1], r.partitions.results[i]
		if b.rowsPerSec.median() < a.rowsPerSec.median() {
			p("**%d partitions drained slower than %d here.** Each partition is a projector process of its own, and %d of them, with the NATS server and ClickHouse, share this machine's two cores; this run does not separate that from the partitioning's own cost.", b.partitions, a.partitions, b.partitions)
			p("")
			break
		}
	}
}

// partitionNote says what bounds the speed-up.
func partitionNote() string {
	return fmt.Sprintf("An organisation is a partition's unit of order, so the speed-up is bounded by the largest partition's share of the events (the hash of %d organisation ids does not split them evenly: see the second column), and here by the machine: the projector processes, the NATS server and ClickHouse all share its two cores, and with other work besides. Where they run on hosts of their own each partition adds a consumer and a writer of its own; how far that goes against one ClickHouse server was not measured here.", partitionOrgs)
}

func (r *report) partitionGoals(func(string, ...any)) {}

// splicePartitions writes the partitions section into an existing report,
// leaving everything else as it was.
func splicePartitions(path string, r *report) error {
	return splice(path, "partitions", r.partitions.stageRun, []part{{heading: partitionHeading, goalPrefix: "| partitioned projection ", section: r.partitionSection, goals: r.partitionGoals}})
}
