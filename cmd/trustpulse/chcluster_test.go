package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestClickHouseClusterOneShard runs the real program on a ClickHouse
// cluster of one shard of two 18.16 replicas and one ZooKeeper, migrated
// with --clickhouse-cluster, SIGKILLs the second replica while the sealed
// wave's responses are being projected, restarts it, and checks that every
// response is counted exactly once on each replica's local table and in
// the served scores, and that the query API answered 200 on every poll
// while the replica was down. trustpulse is connected to the first
// replica (--clickhouse-addr lists both, tried in order), so the query
// side reads there through the Distributed tables, whose local replica
// comes first. With --clickhouse-insert-quorum 2 of 2 the projector
// pauses while the replica is down and resumes when it is back.
func TestClickHouseClusterOneShard(t *testing.T) {
	runClusterWave(t, 1, 2, 1, [][2]int{{0, 1}})
}

// TestClickHouseClusterTwoShards is the same on two shards of two
// replicas, killing one replica of each shard, and checks that each
// organisation's rows live on one shard only, with the event stream in
// three partitions (the projector's marks per organisation and per
// partition together). It takes longer and runs with make test-cluster
// (TRUSTPULSE_TEST_CLUSTER=1).
func TestClickHouseClusterTwoShards(t *testing.T) {
	if os.Getenv("TRUSTPULSE_TEST_CLUSTER") == "" {
		t.Skip("two shards x two replicas: run with make test-cluster (TRUSTPULSE_TEST_CLUSTER=1)")
	}
	runClusterWave(t, 2, 2, 3, [][2]int{{0, 1}, {1, 0}})
}

func runClusterWave(t *testing.T, shards, replicas, partitions int, kill [][2]int) {
	c := testenv.ClickHouseCluster(t, shards, replicas)
	cfg := testConfig(t)
	cfg.ClickHouseAddr = strings.Join(c.Addrs(), ",")
	cfg.ClickHouseDatabase, cfg.ClickHouseCluster, cfg.ClickHouseInsertQuorum = "tp", c.Name, 2
	cfg.ProjectorPartitions = partitions
	// Small batches, so that the kill lands while the wave's responses
	// are being projected.
	cfg.BatchSize = 5
	// A quorum wait shorter than the outage, so that the projector's
	// insert fails and it waits at its start for the quorum.
	cfg.ClickHouseQuorumTimeout = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.RestartWait = 50 * time.Millisecond
	m.Admin.KeepCohortsForTest(true)
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	authorize(t, m, schemas.RoleAnalyst)
	orgs := []string{"acme"}
	for i := range 6 {
		org := fmt.Sprintf("org%d", i)
		if _, _, err := m.Admin.IssueToken(context.Background(), org, schemas.RoleAnalyst, "test"); err != nil {
			t.Fatal(err)
		}
		orgs = append(orgs, org)
	}
	conns := make([][]driver.Conn, shards)
	for s := range shards {
		for r := range replicas {
			conns[s] = append(conns[s], c.Conn(t, s, r))
		}
	}

	// The killer: once answers arrive on the first node, kill the
	// chosen replicas, poll the query API while they are down, restart
	// them.
	var polls, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	started := time.Now()
	var downFor time.Duration
	var atKill, beforeRestart uint64
	go func() {
		defer wg.Done()
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if atKill, _ = nodeCount(conns[0][0], "SELECT count() FROM tp.answers"); atKill > 0 {
				break
			}
		}
		for _, k := range kill {
			c.Kill(k[0], k[1])
			t.Logf("killed replica s%d-r%d (SIGKILL) after %s", k[0]+1, k[1]+1, time.Since(started).Round(time.Millisecond))
		}
		down := time.Now()
		for time.Since(down) < 8*time.Second {
			status, body := get(t, m, "/v1/orgs/acme/waves")
			polls.Add(1)
			if status != http.StatusOK {
				failed.Add(1)
				t.Errorf("query API while a replica is down: %d %s", status, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		beforeRestart, _ = nodeCount(conns[0][0], "SELECT count() FROM tp.answers")
		for _, k := range kill {
			c.Restart(t, k[0], k[1])
		}
		downFor = time.Since(down)
		t.Logf("restarted after %s down", downFor.Round(time.Millisecond))
	}()
	responses := runWave(t, m, rand.New(rand.NewPCG(13, 2)))
	wg.Wait()
	r := waitScores(t, m, "")
	g := waitScores(t, m, "?group_by=department")
	checkResult(t, responses, r, g)
	t.Logf("%d polls of the query API while replicas were down, %d failed", polls.Load(), failed.Load())

	wantRows := 0
	for _, s := range responses {
		wantRows += len(s.answers)
	}
	// Under load: the kill came while answers were still to be written.
	// The projector stood still while a replica was down (quorum 2 of 2).
	t.Logf("answer rows: %d when killed, %d before the restart, %d in all", atKill, beforeRestart, wantRows)
	if int(atKill) >= wantRows {
		t.Errorf("the kill came after the projection (%d of %d answer rows written)", atKill, wantRows)
	}
	// Each replica's own table, once the restarted ones have caught up.
	for s := range shards {
		for r := range replicas {
			conns[s][r] = c.Conn(t, s, r)
		}
	}
	home := -1
	for s := range shards {
		for r := range replicas {
			var rows, resp uint64
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
				rows, _ = nodeCount(conns[s][r], "SELECT count() FROM tp.answers_local")
				resp, _ = nodeCount(conns[s][r], "SELECT uniqExact(response_id) FROM tp.answers_local")
				if rows == 0 || int(rows) >= wantRows || time.Now().After(deadline) {
					break
				}
			}
			switch {
			case rows == 0:
			case int(rows) == wantRows && int(resp) == len(responses):
				if home >= 0 && home != s {
					t.Errorf("acme's answers on shards %d and %d", home+1, s+1)
				}
				home = s
			default:
				t.Errorf("replica s%d-r%d: %d answer rows of %d responses, want %d rows of %d responses", s+1, r+1, rows, resp, wantRows, len(responses))
			}
		}
	}
	if home < 0 {
		t.Error("acme's answers on no shard")
	}
	// An organisation's rows on one shard only, checked per shard; with
	// two shards both hold some.
	shardOf := map[string]int{}
	used := map[int]bool{}
	for s := range shards {
		for _, org := range orgs {
			n, err := nodeCount(conns[s][0], "SELECT count() FROM tp.api_tokens_local WHERE org = '"+org+"'")
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				continue
			}
			if prev, ok := shardOf[org]; ok {
				t.Errorf("org %s's tokens on shards %d and %d", org, prev+1, s+1)
			}
			shardOf[org] = s
			used[s] = true
		}
	}
	t.Logf("acme's answers on shard %d; organisations' tokens by shard (from 0): %v", home+1, shardOf)
	if len(shardOf) != len(orgs) || len(used) != shards {
		t.Errorf("orgs by shard %v: want every org on one shard, every shard used", shardOf)
	}
	// Each token row carries its organisation's partition, and every
	// token was projected once (through the Distributed table).
	for _, org := range orgs {
		var n, parts uint64
		var part uint16
		if err := conns[0][0].QueryRow(context.Background(), "SELECT count(), uniqExact(proj_part), any(proj_part) FROM tp.api_tokens WHERE org = ?", org).Scan(&n, &parts, &part); err != nil {
			t.Fatal(err)
		}
		if want := schemas.PartitionOf(org, partitions); n != 1 || parts != 1 || int(part) != want {
			t.Errorf("org %s: %d token rows in %d partitions (partition %d), want 1 row in partition %d", org, n, parts, part, want)
		}
	}
}

func nodeCount(conn driver.Conn, q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	err := conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// TestClusterFlags: the cluster flags are checked at start, each bad one
// named.
func TestClusterFlags(t *testing.T) {
	base := []string{"--seal-key-file", filepath.Join(t.TempDir(), "seal.key")}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"OK":           {[]string{"--clickhouse-addr", "a:9000,b:9000", "--clickhouse-cluster", "c_1"}, ""},
		"ErrNoAddr":    {[]string{"--clickhouse-cluster", "c1"}, "needs --clickhouse-addr"},
		"ErrName":      {[]string{"--clickhouse-addr", "a:9000", "--clickhouse-cluster", "c-1; DROP"}, "letters, digits and _"},
		"ErrQuorum":    {[]string{"--clickhouse-addr", "a:9000", "--clickhouse-cluster", "c1", "--clickhouse-insert-quorum", "0"}, "--clickhouse-insert-quorum 0"},
		"ErrTimeout":   {[]string{"--clickhouse-addr", "a:9000", "--clickhouse-cluster", "c1", "--clickhouse-quorum-timeout", "5m"}, "--clickhouse-quorum-timeout 5m0s"},
		"ErrAddrList":  {[]string{"--clickhouse-addr", "a:9000,b"}, "want host:port[,host:port...]"},
		"OKSingleNode": {[]string{"--clickhouse-insert-quorum", "0"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.register(fs)
			if err := fs.Parse(append(base, tc.args...)); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
