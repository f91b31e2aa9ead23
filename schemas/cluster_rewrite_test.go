package schemas

import (
	"regexp"
	"strings"
	"testing"
)

var testCluster = Cluster{Name: "c1", Database: "tp"}

// migration0011 stands for the partitioned projector's migration (another
// branch): a column added to the projector's row tables.
var migration0011 = []string{
	"ALTER TABLE answers ADD COLUMN proj_part UInt16 DEFAULT 0",
	"ALTER TABLE projected_events ADD COLUMN proj_part UInt16 DEFAULT 0",
}

// TestClusterRewriteEveryMigration rewrites every statement of every
// migration file (and schema_migrations, and a stand-in for 0011) and
// checks the cluster form's shape: each sharded table has a replicated
// _local table on the cluster with the single-node engine's parameters
// and a Distributed table by cityHash64(org) of the same name; each fully
// replicated one a single ZooKeeper path; nothing left single-node.
func TestClusterRewriteEveryMigration(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{migrationsTable}
	for _, m := range ms {
		stmts = append(stmts, m.Statements...)
	}
	stmts = append(stmts, migration0011...)
	created := map[string]bool{}
	engine := regexp.MustCompile(`ENGINE = (\w+)(\(([^)]*)\))?`)
	for _, stmt := range stmts {
		out, err := testCluster.Rewrite(stmt)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for _, s := range out {
			if !strings.Contains(s, "tp.") {
				t.Errorf("unqualified table in %q", s)
			}
			t.Log(s)
		}
		switch {
		case strings.HasPrefix(stmt, "CREATE TABLE"):
			table := reCreate.FindStringSubmatch(stmt)[1]
			created[table] = true
			single := engine.FindStringSubmatch(stmt)
			rep := engine.FindStringSubmatch(out[0])
			if rep == nil || rep[1] != "Replicated"+single[1] {
				t.Fatalf("%s: engine %v, want Replicated%s", table, rep, single[1])
			}
			wantArgs := "'/clickhouse/tables/{shard}/tp/" + table + "_local', '{replica}'"
			if FullyReplicated[table] {
				wantArgs = "'/clickhouse/tables/all/tp/" + table + "', '{shard}-{replica}'"
			}
			if single[3] != "" {
				wantArgs += ", " + single[3]
			}
			if rep[3] != wantArgs {
				t.Errorf("%s: engine parameters %q, want %q", table, rep[3], wantArgs)
			}
			if FullyReplicated[table] {
				if len(out) != 1 || !strings.HasPrefix(out[0], "CREATE TABLE IF NOT EXISTS tp."+table+" ON CLUSTER c1 (") {
					t.Errorf("%s: %q", table, out)
				}
				continue
			}
			if len(out) != 2 || !strings.HasPrefix(out[0], "CREATE TABLE IF NOT EXISTS tp."+table+"_local ON CLUSTER c1 (") ||
				out[1] != "CREATE TABLE IF NOT EXISTS tp."+table+" ON CLUSTER c1 AS tp."+table+"_local ENGINE = Distributed(c1, tp, "+table+"_local, cityHash64(org))" {
				t.Errorf("%s: %q", table, out)
			}
		case strings.Contains(stmt, "ADD COLUMN"):
			table := reAlter.FindStringSubmatch(stmt)[1]
			if FullyReplicated[table] {
				if len(out) != 1 || out[0] != strings.Replace(stmt, "TABLE "+table, "TABLE tp."+table, 1) {
					t.Errorf("%s: %q", table, out)
				}
				continue
			}
			if len(out) != 3 || out[0] != "ALTER TABLE tp."+table+"_local ON CLUSTER c1 "+strings.TrimPrefix(stmt, "ALTER TABLE "+table+" ") ||
				out[1] != "DROP TABLE IF EXISTS tp."+table+" ON CLUSTER c1" || !strings.Contains(out[2], "AS tp."+table+"_local ENGINE = Distributed") {
				t.Errorf("%s: %q", table, out)
			}
		case strings.Contains(stmt, " UPDATE "):
			if len(out) != 1 || out[0] != "ALTER TABLE tp.comments_local ON CLUSTER c1 UPDATE seq = 0 WHERE seq != 0" {
				t.Errorf("mutation: %q", out)
			}
		case strings.HasPrefix(stmt, "INSERT"):
			if len(out) != 1 || !strings.HasPrefix(out[0], "INSERT INTO tp.served_sets (") || !strings.Contains(out[0], "GLOBAL NOT IN (SELECT") {
				t.Errorf("insert select: %q", out)
			}
		default:
			t.Errorf("statement of no known kind: %q", stmt)
		}
	}
	for _, tbl := range append([]string{"schema_migrations"}, ProjectionTables...) {
		if !created[tbl] {
			t.Errorf("table %s never created", tbl)
		}
	}
}

// TestClusterRewriteRefuses: what has no cluster form is an error, never
// passed through single-node.
func TestClusterRewriteRefuses(t *testing.T) {
	for name, stmt := range map[string]string{
		"NoOrg":      "CREATE TABLE IF NOT EXISTS things (id String) ENGINE = MergeTree ORDER BY id",
		"Replicated": "CREATE TABLE IF NOT EXISTS x (org String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY org",
		"Log":        "CREATE TABLE IF NOT EXISTS x (org String) ENGINE = Log",
		"Drop":       "DROP TABLE answers",
		"Rename":     "RENAME TABLE a TO b",
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := testCluster.Rewrite(stmt); err == nil {
				t.Fatalf("rewrote %q to %q", stmt, out)
			}
		})
	}
}
