//go:build chdb

package schemas_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	chdb "github.com/chdb-io/chdb-go/chdb-purego"

	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestCurrentClickHouseClusterCompat runs the cluster form of the schema
// (schemas.Cluster.Rewrite) on current ClickHouse (chDB, 26.5) as far as
// one in-process node allows. It has its own process (make test-compat runs
// it apart from TestCurrentClickHouseCompat: chDB holds one engine per
// process), with a config that defines a cluster of one node, which the
// engine takes for itself (is_local), and the {shard}/{replica} macros.
//
// What it covers: every rewritten statement parses (EXPLAIN AST), exactly
// as trustpulse issues it, ON CLUSTER and the Replicated* parameters
// included; then each runs with ON CLUSTER dropped and Replicated*(path,
// replica, args) as the plain engine(args): the Distributed tables over the
// _local ones, ADD COLUMN's drop and re-creation of the Distributed table,
// the mutation on the _local table, 0008's INSERT ... SELECT with GLOBAL NOT
// IN; every projector insert through the Distributed tables with the
// cluster's insert settings, and its reads (the per-organisation
// high-water marks included) with select_sequential_consistency; and the
// settings exist. What it cannot: chDB runs no distributed DDL queue ("Replicated DDL
// queries are disabled") and has no system.zookeeper, and its replicated
// inserts did not complete against Debian's ZooKeeper 3.8, so ON CLUSTER
// execution, replication, quorum, deduplication and PendingQuorums are
// proven on 18.16 only (TestClusterOn1816, the cluster tests of
// cmd/trustpulse and projector).
func TestCurrentClickHouseClusterCompat(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cluster.xml")
	// tcp_port is never listened on: chDB serves no port, but it marks the
	// cluster's replica on it as itself.
	if err := os.WriteFile(cfg, []byte(`<clickhouse>
    <tcp_port>19999</tcp_port>
    <macros><shard>1</shard><replica>r1</replica></macros>
    <remote_servers><c1><shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>19999</port></replica>
    </shard></c1></remote_servers>
</clickhouse>`), 0o644); err != nil {
		t.Fatal(err)
	}
	conn, err := chdb.NewConnectionFromConnString(filepath.Join(dir, "data") + "?config-file=" + cfg)
	if err != nil {
		t.Fatalf("chDB: %v", err)
	}
	defer conn.Close()
	run := func(name, sql string) string {
		t.Helper()
		res, err := conn.Query(sql, "TabSeparated")
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("%s: current ClickHouse refused\n%s\n%v", name, sql, err)
		}
		defer res.Free()
		return res.String()
	}
	t.Logf("current ClickHouse engine: %s", strings.TrimSpace(run("version", "SELECT version()")))
	if out := run("cluster", "SELECT is_local FROM system.clusters WHERE cluster = 'c1'"); strings.TrimSpace(out) != "1" {
		t.Fatalf("the one-node cluster is not local: %q", out)
	}
	p := projector.NewCluster(schemas.Cluster{Name: "c1", Database: "tp"}, 2, 15*time.Second)
	var names []string
	for k := range p.InsertSettings() {
		names = append(names, k)
	}
	for k := range p.ReadSettings() {
		names = append(names, k)
	}
	names = append(names, "insert_deduplicate")
	for _, n := range names {
		if out := run("setting "+n, "SELECT count() FROM system.settings WHERE name = '"+n+"'"); strings.TrimSpace(out) != "1" {
			t.Errorf("setting %s missing on current ClickHouse", n)
		}
	}

	c := schemas.Cluster{Name: "c1", Database: "tp"}
	run("create database", "CREATE DATABASE IF NOT EXISTS tp")
	run("use database", "USE tp")
	replicated := regexp.MustCompile(`ENGINE = Replicated(\w+)\('[^']*', '[^']*'(, )?([^)]*)\)`)
	single := func(s string) string {
		s = strings.Replace(s, " ON CLUSTER c1", "", 1)
		return replicated.ReplaceAllStringFunc(s, func(m string) string {
			g := replicated.FindStringSubmatch(m)
			if g[3] == "" {
				return "ENGINE = " + g[1]
			}
			return "ENGINE = " + g[1] + "(" + g[3] + ")"
		})
	}
	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{schemas.MigrationStatements()[0].SQL}
	for _, m := range ms {
		stmts = append(stmts, m.Statements...)
	}
	for round := range 2 {
		for i, stmt := range stmts {
			if _, _, ok := schemas.AddedColumn(stmt); ok && round == 1 {
				continue // Migrate skips an ADD COLUMN whose column exists (no IF NOT EXISTS on 18.16)
			}
			out, err := c.Rewrite(stmt)
			if err != nil {
				t.Fatal(err)
			}
			for j, s := range out {
				name := fmt.Sprintf("statement %d.%d", i+1, j+1)
				run(name+" (parse)", "EXPLAIN AST "+s)
				run(name, single(s))
			}
		}
	}
	if out := run("engines", "SELECT name, engine FROM system.tables WHERE database = 'tp' AND name IN ('answers', 'answers_local', 'projected_events') ORDER BY name"); out != "answers\tDistributed\nanswers_local\tMergeTree\nprojected_events\tMergeTree\n" {
		t.Errorf("engines: %q", out)
	}
	if out := run("new column", "SELECT count() FROM system.columns WHERE database = 'tp' AND table IN ('answers', 'answers_local') AND name = 'proj_part'"); strings.TrimSpace(out) != "2" {
		t.Errorf("proj_part on %s of answers and answers_local, want both", out)
	}

	settings := func(s clickhouse.Settings) string {
		var kv []string
		for k, v := range s {
			kv = append(kv, fmt.Sprintf("%s = %v", k, v))
		}
		sort.Strings(kv)
		return " SETTINGS " + strings.Join(kv, ", ")
	}
	inserts := projector.InsertStatements()
	for table, sql := range inserts {
		// 18.16's quorum is of a shard's replicas; this one node has one.
		s := p.InsertSettings()
		s["insert_quorum"] = 1
		run("insert into "+table, sql+settings(s)+" VALUES "+sampleRows[table])
	}
	reads := append(projector.ClusterStatements(), projector.Statements()...)
	for _, s := range reads {
		if strings.HasPrefix(s.Name, "empty ") {
			continue // a replay on a cluster would empty the _local tables ON CLUSTER: not built yet
		}
		out := withExternal(run, s.External, func() string { return run(s.Name, render(t, s.SQL, s.Args)+settings(p.ReadSettings())) })
		if s.Name == "organisations' high-water marks of answers" && !strings.Contains(out, "acme\t4") {
			t.Errorf("%s: %q, want acme 4", s.Name, out)
		}
	}
}
