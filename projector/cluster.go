package projector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Cluster adapts the projector to a replicated, sharded ClickHouse (the
// tables of schemas.Cluster). Its exactly-once effect rests on reading,
// after every start and failure, a checkpoint and high-water marks that
// cover every row ever written; on a cluster three things threaten that,
// and each has its answer here, verified on ClickHouse 18.16 with a real
// cluster (schemas/cluster_test.go, cmd/trustpulse/chcluster_test.go):
//
//   - A lagging replica. A plain read from a replica that has not yet
//     fetched the newest parts returns a lower high-water mark, and the rows
//     above it would be written twice. Every insert waits for insert_quorum
//     replicas (InsertQuorum) and every read of the checkpoint, the
//     high-water marks and projected_events uses
//     select_sequential_consistency=1: a replica that lacks a part written
//     with quorum refuses the read (code 289) rather than answer low, and
//     the projector retries.
//   - An insert whose quorum failed. 18.16 keeps the part on the replica
//     that took it (code 319 "Unknown status, client must retry" after
//     insert_quorum_timeout), refuses every later quorum insert into that
//     table (code 286 "Quorum for previous write has not been satisfied
//     yet") until another replica has fetched it, and hides it from
//     sequentially consistent reads meanwhile. A high-water mark read then
//     would miss rows that are about to appear. So before it reads, the
//     projector waits until no insert of its tables has a quorum pending
//     (schemas.Cluster.PendingQuorums, from ZooKeeper): once the quorum is
//     reached the part counts, and the read sees it. With InsertQuorum equal
//     to the replicas of a shard, the projector therefore pauses while a
//     replica is down and resumes when it is back; it does not go on with
//     fewer copies.
//   - A batch split over shards. A Distributed insert writes each shard's
//     rows as its own block; one shard can take its block and another fail.
//     One max(seq) per table would then skip the failed shard's rows on the
//     retry, so a sharded table's high-water mark is kept per organisation
//     (max(seq) GROUP BY org): an organisation's rows of a batch live on one
//     shard, in one block, all or nothing. The fully replicated tables
//     (projected_events, the checkpoint) are one block on one replicated
//     table and keep one mark.
//
// A retried insert identical to one whose answer was lost (the connection
// broke after the server took it) is dropped by ReplicatedMergeTree as a
// duplicate block (its checksum is in ZooKeeper's blocks/ for the last 100
// blocks): insert_deduplicate is on by default on 18.16 and current
// releases. The projector does not rely on it (its retry re-reads the marks
// and leaves out what is written), but it makes an identical retry
// harmless.
type Cluster struct {
	schema schemas.Cluster
	// InsertQuorum is insert_quorum of every insert.
	InsertQuorum int
	// QuorumTimeout is insert_quorum_timeout (18.16's default is 10
	// minutes, during which a batch would hang).
	QuorumTimeout time.Duration
}

// NewCluster returns the cluster mode for the tables of c with inserts
// written to quorum replicas within timeout.
func NewCluster(c schemas.Cluster, quorum int, timeout time.Duration) *Cluster {
	return &Cluster{schema: c, InsertQuorum: quorum, QuorumTimeout: timeout}
}

// ReadSettings are the settings of the projector's reads on the cluster.
func (c *Cluster) ReadSettings() clickhouse.Settings {
	return clickhouse.Settings{"select_sequential_consistency": 1}
}

// InsertSettings are the settings of the projector's inserts on the
// cluster.
func (c *Cluster) InsertSettings() clickhouse.Settings {
	return clickhouse.Settings{
		"insert_quorum":           c.InsertQuorum,
		"insert_quorum_timeout":   int(c.QuorumTimeout.Milliseconds()),
		"insert_distributed_sync": 1,
	}
}

// ClusterStatements returns the statements the cluster mode adds, for the
// compatibility test against current ClickHouse.
func ClusterStatements() []schemas.Statement {
	var out []schemas.Statement
	for _, t := range rowTables {
		if !schemas.FullyReplicated[t] {
			out = append(out, schemas.Statement{Name: "organisations' high-water marks of " + t, SQL: fmt.Sprintf(sqlOrgHighWaterMark, t)})
		}
	}
	return out
}

// readCtx carries the settings of the projector's reads.
func (p *Projector) readCtx(ctx context.Context) context.Context {
	if p.cfg.Cluster == nil {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(p.cfg.Cluster.ReadSettings()))
}

// insertCtx carries the settings of the projector's inserts.
func (p *Projector) insertCtx(ctx context.Context) context.Context {
	if p.cfg.Cluster == nil {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(p.cfg.Cluster.InsertSettings()))
}

// checkQuorums fails while an insert into one of the projector's tables
// waits for its quorum (see Cluster).
func (p *Projector) checkQuorums(ctx context.Context) error {
	if p.cfg.Cluster == nil {
		return nil
	}
	tables := append(slices.Clone(rowTables), "projector_checkpoint")
	pending, err := p.cfg.Cluster.schema.PendingQuorums(ctx, p.ch, tables)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("projector: waiting for the insert quorum of %s (a replica is down or behind); the high-water marks are read once it is reached", strings.Join(pending, ", "))
	}
	return nil
}

// byOrg reports whether table's high-water mark is kept per organisation.
func (p *Projector) byOrg(table string) bool {
	return p.cfg.Cluster != nil && !schemas.FullyReplicated[table]
}

// readOrgHWM reads a sharded table's high-water mark of each organisation.
func (p *Projector) readOrgHWM(ctx context.Context, table string) (map[string]uint64, error) {
	rows, err := p.ch.Query(p.readCtx(ctx), fmt.Sprintf(sqlOrgHighWaterMark, table))
	if err != nil {
		return nil, fmt.Errorf("projector: read high-water marks of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var org string
		var m uint64
		if err := rows.Scan(&org, &m); err != nil {
			return nil, err
		}
		out[org] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projector: read high-water marks of %s: %w", table, err)
	}
	return out, nil
}

// sqlOrgHighWaterMark is a sharded table's max(seq) per organisation.
const sqlOrgHighWaterMark = "SELECT org, max(seq) FROM %s GROUP BY org"

// orgOf is the organisation of a row of a sharded table: its first column.
func orgOf(r row) string {
	s, _ := r.values[0].(string)
	return s
}
