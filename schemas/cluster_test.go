package schemas_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestClusterOn1816 runs the cluster form of the migrations on a real
// cluster of one shard of two ClickHouse 18.16 replicas and one ZooKeeper,
// and checks what the projector's exactly-once effect there rests on:
//
//   - every setting the cluster mode uses exists (system.settings);
//   - the migrations create Replicated* tables on both nodes and Distributed
//     ones over them, and a second run changes nothing; a migration like
//     0011 (ALTER ... ADD COLUMN) and a mutation (0010's ALTER ... UPDATE)
//     reach both replicas in their cluster form;
//   - an insert retried identically is dropped as a duplicate block, on the
//     replicated table and through the Distributed one;
//   - an insert whose quorum fails (the other replica down) answers 319
//     "Unknown status, client must retry", keeps its part on the replica
//     written, hides it from sequentially consistent reads, refuses later
//     quorum inserts (286), is reported by PendingQuorums, and counts once
//     the other replica is back and has fetched it;
//   - a cluster the server lacks is one clear error.
func TestClusterOn1816(t *testing.T) {
	c := testenv.ClickHouseCluster(t, 1, 2)
	ctx := context.Background()
	cfg := deploy.ClickHouseConfig{Addr: c.Node(0, 0).Addr, Database: "tp", User: "default", Cluster: c.Name}
	a, err := deploy.OpenClickHouse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := open(t, c.Node(0, 1).Addr)
	log := testenv.Logger(t)

	t.Run("Settings", func(t *testing.T) {
		for _, s := range []string{"insert_quorum", "insert_quorum_timeout", "select_sequential_consistency", "insert_distributed_sync", "insert_deduplicate"} {
			var n uint64
			if err := a.QueryRow(ctx, "SELECT count() FROM system.settings WHERE name = ?", s).Scan(&n); err != nil || n != 1 {
				t.Errorf("setting %s: %d %v", s, n, err)
			}
		}
	})
	t.Run("Migrate", func(t *testing.T) {
		for range 2 {
			if err := schemas.MigrateCluster(ctx, a, cfg.SchemaCluster(), log); err != nil {
				t.Fatal(err)
			}
		}
		for i, node := range []driver.Conn{a, b} {
			engines := map[string]string{}
			rows, err := node.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = 'tp'")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var n, e string
				if err := rows.Scan(&n, &e); err != nil {
					t.Fatal(err)
				}
				engines[n] = e
			}
			rows.Close()
			want := map[string]string{"answers": "Distributed", "answers_local": "ReplicatedMergeTree",
				"waves": "Distributed", "waves_local": "ReplicatedReplacingMergeTree", "served_sets_local": "ReplicatedReplacingMergeTree",
				"projected_events": "ReplicatedMergeTree", "projector_checkpoint": "ReplicatedReplacingMergeTree", "schema_migrations": "ReplicatedReplacingMergeTree"}
			for n, e := range want {
				if engines[n] != e {
					t.Errorf("node %d: table %s engine %q, want %s", i+1, n, engines[n], e)
				}
			}
			if _, ok := engines["projected_events_local"]; ok {
				t.Errorf("node %d: projected_events is sharded", i+1)
			}
			var applied uint64
			if err := node.QueryRow(ctx, "SELECT count() FROM tp.schema_migrations FINAL").Scan(&applied); err != nil {
				t.Fatal(err)
			}
			if ms, _ := schemas.Migrations(); int(applied) != len(ms) {
				t.Errorf("node %d: %d migrations recorded, want %d", i+1, applied, len(ms))
			}
		}
	})
	t.Run("AlterAndMutation", func(t *testing.T) {
		insert(t, a, ctx, "comments", []any{"acme", "w1", "s", "q", "words", "", "", "", "", uint64(9)})
		cl := cfg.SchemaCluster()
		for _, stmt := range []string{
			"ALTER TABLE comments ADD COLUMN test_extra UInt16 DEFAULT 0",
			"ALTER TABLE projected_events ADD COLUMN test_extra UInt16 DEFAULT 0",
			"ALTER TABLE comments UPDATE seq = 0 WHERE seq != 0",
		} {
			out, err := cl.Rewrite(stmt)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range out {
				if err := a.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
		}
		for i, node := range []driver.Conn{a, b} {
			var seq uint64
			var part uint16
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				err := node.QueryRow(ctx, "SELECT max(seq), max(test_extra) FROM tp.comments_local").Scan(&seq, &part)
				if err == nil && seq == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d: comments seq %d %v after the mutation", i+1, seq, err)
				}
			}
			if err := node.QueryRow(ctx, "SELECT max(test_extra) FROM tp.comments").Scan(&part); err != nil {
				t.Errorf("node %d: the Distributed table lacks the new column: %v", i+1, err)
			}
			if err := node.QueryRow(ctx, "SELECT max(test_extra) FROM tp.projected_events").Scan(&part); err != nil {
				t.Errorf("node %d: projected_events lacks the new column: %v", i+1, err)
			}
		}
	})
	quorum := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum": 2, "insert_quorum_timeout": 2000, "insert_distributed_sync": 1}))
	consistent := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"select_sequential_consistency": 1}))
	t.Run("Deduplication", func(t *testing.T) {
		for _, table := range []string{"tp.projected_events", "tp.wave_seals"} {
			row := []any{"e1", uint64(1)}
			if table == "tp.wave_seals" {
				row = []any{"acme", "w1", uint64(1)}
			}
			for range 3 {
				if err := insertErr(a, quorum, table, row); err != nil {
					t.Fatal(err)
				}
			}
			for i, node := range []driver.Conn{a, b} {
				if n := count(t, node, consistent, "SELECT count() FROM "+table); n != 1 {
					t.Errorf("node %d: %s holds %d rows after three identical inserts, want 1", i+1, table, n)
				}
			}
		}
	})
	t.Run("FailedQuorum", func(t *testing.T) {
		c.Kill(0, 1)
		err := insertErr(a, quorum, "tp.projected_events", []any{"e2", uint64(2)})
		if err == nil || !strings.Contains(err.Error(), "319") {
			t.Fatalf("quorum insert with a replica down: %v, want code 319", err)
		}
		if n := count(t, a, ctx, "SELECT count() FROM tp.projected_events"); n != 2 {
			t.Errorf("plain read: %d rows, want 2 (the part stays on the replica written)", n)
		}
		if n := count(t, a, consistent, "SELECT count() FROM tp.projected_events"); n != 1 {
			t.Errorf("sequentially consistent read: %d rows, want 1 (the pending part hidden)", n)
		}
		if err := insertErr(a, quorum, "tp.projected_events", []any{"e3", uint64(3)}); err == nil || !strings.Contains(err.Error(), "286") {
			t.Errorf("next quorum insert: %v, want code 286", err)
		}
		if p, err := cfg.SchemaCluster().PendingQuorums(ctx, a, []string{"projected_events", "answers"}); err != nil || len(p) != 1 || !strings.HasPrefix(p[0], "projected_events") {
			t.Errorf("PendingQuorums: %v %v, want projected_events", p, err)
		}
		c.Restart(t, 0, 1)
		b = open(t, c.Node(0, 1).Addr)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			p, err := cfg.SchemaCluster().PendingQuorums(ctx, a, []string{"projected_events"})
			if err == nil && len(p) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("quorum still pending after the replica came back: %v %v", p, err)
			}
		}
		for i, node := range []driver.Conn{a, b} {
			if n := count(t, node, consistent, "SELECT count() FROM tp.projected_events"); n != 2 {
				t.Errorf("node %d: %d rows once the quorum is reached, want 2", i+1, n)
			}
		}
	})
	t.Run("ErrUnknownCluster", func(t *testing.T) {
		bad := cfg
		bad.Cluster = "nosuch"
		_, err := deploy.OpenClickHouse(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), `--clickhouse-cluster "nosuch"`) || !strings.Contains(err.Error(), c.Name) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("unknown cluster: %v", err)
		}
		t.Log(err)
	})
}

func open(t *testing.T, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native, DialTimeout: 2 * time.Second, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func insert(t *testing.T, conn driver.Conn, ctx context.Context, table string, row []any) {
	t.Helper()
	cols := map[string]string{"comments": "(org, wave_id, survey_id, question_id, text, department, team, location, tenure_band, seq)"}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" "+cols[table])
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(row...); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func insertErr(conn driver.Conn, ctx context.Context, table string, row []any) error {
	cols := "(event_id, seq)"
	if strings.HasSuffix(table, "wave_seals") {
		cols = "(org, wave_id, seq)"
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" "+cols)
	if err != nil {
		return err
	}
	if err := b.Append(row...); err != nil {
		return err
	}
	return b.Send()
}

func count(t *testing.T, conn driver.Conn, ctx context.Context, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
