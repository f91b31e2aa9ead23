package schemas

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Cluster is the cluster form of the schema: with --clickhouse-cluster the
// migrations create every table on every node of a ClickHouse cluster,
// replicated through ZooKeeper and sharded by organisation.
//
// The migration files stay single-node SQL, and Rewrite derives the cluster
// form of each statement, so that one set of files serves both and the
// queries keep their table names:
//
//   - A table with an org column is sharded: CREATE TABLE t becomes
//     t_local ON CLUSTER, the Replicated* form of the same engine with the
//     ZooKeeper path /clickhouse/tables/{shard}/DB/t_local and replica
//     '{replica}' (ReplacingMergeTree(seq) → ReplicatedReplacingMergeTree(
//     path, '{replica}', seq)), and t ON CLUSTER AS t_local ENGINE =
//     Distributed(CLUSTER, DB, t_local, cityHash64(org)). An organisation's
//     rows all live on one shard, so its queries read one shard, and the
//     rows of one organisation in one projector batch land in one block of
//     one shard: all or nothing (the projector's per-organisation
//     high-water marks rest on that, see projector/cluster.go).
//   - Tables without an org are not sharded but held in full by every node
//     (FullyReplicated): one ZooKeeper path /clickhouse/tables/all/DB/t for
//     all nodes, replica '{shard}-{replica}', no Distributed table. These are
//     the projector's bookkeeping (projected_events, projector_checkpoint)
//     and schema_migrations: small, read on the node the projector is
//     connected to, and written in one block each, so that a batch's record
//     is never split over shards. (Sharding projected_events by event id
//     would let a batch's record land on one shard and not the other, and
//     its one high-water mark could then skip the missing half.)
//     Any other table without org is an error: it has to be placed
//     deliberately.
//   - ALTER TABLE t ADD COLUMN of a sharded table alters t_local ON CLUSTER
//     (ClickHouse runs it once per shard and replicates it), then drops and
//     recreates t AS t_local: ClickHouse 18.16 refuses ALTER ... ON CLUSTER
//     of a Distributed table over replicated shards ("Table t isn't
//     replicated, but shard #1 is replicated according to its cluster
//     definition"), and the Distributed table holds no data.
//   - ALTER TABLE t UPDATE/DELETE (a mutation) runs on t_local ON CLUSTER.
//   - On a fully replicated table an ALTER runs without ON CLUSTER: the
//     table is one replicated table, and ON CLUSTER would run it once per
//     shard on the same ZooKeeper path.
//   - INSERT ... SELECT keeps the Distributed names (it reads every shard and
//     writes through the sharding key; it needs insert_distributed_sync=1,
//     which the cluster connection sets) and turns IN (SELECT ...) into
//     GLOBAL IN, which distributed_product_mode=deny requires for a
//     subquery over a Distributed table inside a distributed query.
//
// The {shard} and {replica} macros come from each node's config (<macros>);
// ON CLUSTER DDL needs <distributed_ddl> and ZooKeeper (deploy/localch's
// Cluster writes all three). Everything here runs on ClickHouse 18.16 and on
// current releases (schemas/cluster_test.go, compat_chdb_test.go).
type Cluster struct {
	// Name is the cluster's name in remote_servers (system.clusters).
	Name string
	// Database is the database trustpulse owns on every node.
	Database string
}

// FullyReplicated lists the tables that every node holds in full.
var FullyReplicated = map[string]bool{"projected_events": true, "projector_checkpoint": true, "schema_migrations": true}

// LocalTable is the name of the replicated table under a sharded table's
// Distributed one.
func LocalTable(table string) string { return table + "_local" }

var (
	reCreate = regexp.MustCompile(`(?is)^CREATE TABLE IF NOT EXISTS\s+(\w+)\s*\((.*)\)\s*ENGINE\s*=\s*(\w+)(\s*\(([^)]*)\))?(.*)$`)
	reAlter  = regexp.MustCompile(`(?is)^ALTER TABLE\s+(\w+)\s+(ADD COLUMN|UPDATE|DELETE)\b(.*)$`)
	reInsert = regexp.MustCompile(`(?is)^INSERT INTO\s+(\w+)\s*(\([^)]*\))\s*(SELECT\b.*)$`)
	reOrgCol = regexp.MustCompile(`(?m)^\s*org\s+String\b`)
	reIn     = regexp.MustCompile(`(?i)\b(NOT\s+)?IN\s*\(\s*SELECT\b`)
)

// Rewrite returns the cluster form of one single-node migration statement:
// one or more statements, to run in order. It fails on a statement it has
// no cluster form for, so that a new kind of migration is noticed in its
// unit test rather than on a cluster.
func (c Cluster) Rewrite(stmt string) ([]string, error) {
	stmt = strings.TrimSpace(stmt)
	if m := reCreate.FindStringSubmatch(stmt); m != nil {
		return c.create(m[1], m[2], m[3], m[5], m[6])
	}
	if m := reAlter.FindStringSubmatch(stmt); m != nil {
		return c.alter(m[1], strings.ToUpper(m[2]), m[2]+m[3])
	}
	if m := reInsert.FindStringSubmatch(stmt); m != nil {
		sel := reIn.ReplaceAllStringFunc(m[3], func(s string) string { return "GLOBAL " + s })
		return []string{fmt.Sprintf("INSERT INTO %s %s %s", c.qualify(m[1]), m[2], sel)}, nil
	}
	return nil, fmt.Errorf("schemas: no cluster form for statement %.60q", stmt)
}

func (c Cluster) qualify(table string) string { return c.Database + "." + table }

func (c Cluster) onCluster(table string) string {
	return fmt.Sprintf("%s ON CLUSTER %s", c.qualify(table), c.Name)
}

// zkPath is a table's ZooKeeper path: per shard, or one for all nodes.
func (c Cluster) zkPath(table string) string {
	if FullyReplicated[table] {
		return fmt.Sprintf("/clickhouse/tables/all/%s/%s", c.Database, table)
	}
	return fmt.Sprintf("/clickhouse/tables/{shard}/%s/%s", c.Database, LocalTable(table))
}

func (c Cluster) create(table, cols, engine, args, rest string) ([]string, error) {
	if !strings.HasSuffix(engine, "MergeTree") || strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("schemas: table %s: engine %s has no cluster form (want a *MergeTree)", table, engine)
	}
	replica := "'{replica}'"
	if FullyReplicated[table] {
		replica = "'{shard}-{replica}'"
	}
	params := fmt.Sprintf("'%s', %s", c.zkPath(table), replica)
	if strings.TrimSpace(args) != "" {
		params += ", " + strings.TrimSpace(args)
	}
	create := func(name string) string {
		return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s) ENGINE = Replicated%s(%s)%s", c.onCluster(name), cols, engine, params, rest)
	}
	if FullyReplicated[table] {
		return []string{create(table)}, nil
	}
	if !reOrgCol.MatchString(cols) {
		return nil, fmt.Errorf("schemas: table %s has no org column to shard by: shard it by another key or add it to FullyReplicated", table)
	}
	return []string{create(LocalTable(table)), c.distributed(table)}, nil
}

// distributed creates a sharded table's Distributed table over its local one.
func (c Cluster) distributed(table string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(org))",
		c.onCluster(table), c.qualify(LocalTable(table)), c.Name, c.Database, LocalTable(table))
}

func (c Cluster) alter(table, kind, body string) ([]string, error) {
	if FullyReplicated[table] {
		return []string{fmt.Sprintf("ALTER TABLE %s %s", c.qualify(table), body)}, nil
	}
	local := fmt.Sprintf("ALTER TABLE %s %s", c.onCluster(LocalTable(table)), body)
	if kind != "ADD COLUMN" {
		return []string{local}, nil
	}
	return []string{local, fmt.Sprintf("DROP TABLE IF EXISTS %s", c.onCluster(table)), c.distributed(table)}, nil
}

// Check returns one clear error when the server conn is connected to does
// not know the cluster c.Name (system.clusters, from remote_servers).
func (c Cluster) Check(ctx context.Context, conn driver.Conn) error {
	var known []string
	rows, err := conn.Query(ctx, "SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster")
	if err != nil {
		return fmt.Errorf("schemas: read system.clusters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if name == c.Name {
			return nil
		}
		known = append(known, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("schemas: read system.clusters: %w", err)
	}
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return fmt.Errorf("--clickhouse-cluster %q: the ClickHouse server has no such cluster in system.clusters (it knows: %s); define it under <remote_servers> on every node", c.Name, list)
}

// PendingQuorums names the tables whose last quorum insert has not yet
// reached its quorum (a replica is down or behind): ZooKeeper holds a
// quorum/status node for each, which ClickHouse removes once enough
// replicas have the part. Read through system.zookeeper.
func (c Cluster) PendingQuorums(ctx context.Context, conn driver.Conn, tables []string) ([]string, error) {
	var shards []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.zookeeper WHERE path = '/clickhouse/tables'")
	if err != nil {
		return nil, fmt.Errorf("schemas: list shards in ZooKeeper: %w", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		shards = append(shards, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("schemas: list shards in ZooKeeper: %w", err)
	}
	var pending []string
	for _, t := range tables {
		for _, s := range shards {
			path := strings.Replace(c.zkPath(t), "{shard}", s, 1)
			if FullyReplicated[t] != (s == "all") {
				continue
			}
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = ? AND name = 'status'", path+"/quorum").Scan(&n); err != nil {
				if strings.Contains(err.Error(), "No node") || strings.Contains(err.Error(), "no node") {
					continue // no such table on this shard (yet)
				}
				return nil, fmt.Errorf("schemas: read quorum status of %s: %w", path, err)
			}
			if n > 0 {
				pending = append(pending, fmt.Sprintf("%s (shard %s)", t, s))
			}
		}
	}
	return pending, nil
}
