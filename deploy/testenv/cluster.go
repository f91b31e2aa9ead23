package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/zookeeper"
)

// ClusterName is the name the test cluster has in remote_servers.
const ClusterName = "trustpulse_test"

// Cluster is a real ClickHouse cluster on loopback: shards × replicas
// ClickHouse servers coordinated by one ZooKeeper server, each in a
// temporary directory of its own.
type Cluster struct {
	Name string
	ZK   *zookeeper.Server
	// Nodes[shard][replica]; a killed node is restarted in place by
	// Restart, so read it under Node.
	mu    sync.Mutex
	nodes [][]*localch.Server
	opts  [][]localch.Options
	dirs  [][]string
}

// ClickHouseCluster starts a cluster of shards × replicas nodes and stops it
// when the test ends. A missing ZooKeeper fails the test with the command
// that installs it.
func ClickHouseCluster(tb testing.TB, shards, replicas int) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := os.MkdirTemp("", "trustpulse-chc-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			logTails(tb, base)
		}
		os.RemoveAll(base)
	})
	zk, err := zookeeper.Start(ctx, filepath.Join(base, "zk"), 0)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(zk.Stop)
	c := &Cluster{Name: ClusterName, ZK: zk}
	layout := make([][]string, shards)
	ports := make([][]int, shards)
	for s := range shards {
		for range replicas {
			p, err := localch.FreePort()
			if err != nil {
				tb.Fatal(err)
			}
			ports[s] = append(ports[s], p)
			layout[s] = append(layout[s], fmt.Sprintf("127.0.0.1:%d", p))
		}
	}
	c.nodes = make([][]*localch.Server, shards)
	c.opts = make([][]localch.Options, shards)
	c.dirs = make([][]string, shards)
	type started struct {
		s, r int
		srv  *localch.Server
		err  error
	}
	out := make(chan started)
	for s := range shards {
		c.nodes[s] = make([]*localch.Server, replicas)
		c.opts[s] = make([]localch.Options, replicas)
		c.dirs[s] = make([]string, replicas)
		for r := range replicas {
			c.dirs[s][r] = filepath.Join(base, fmt.Sprintf("s%d-r%d", s+1, r+1))
			c.opts[s][r] = localch.Options{TCPPort: ports[s][r], Cluster: &localch.Cluster{
				Name: ClusterName, Shards: layout, ZooKeeper: []string{zk.Addr},
				Shard: fmt.Sprint(s + 1), Replica: fmt.Sprintf("s%d-r%d", s+1, r+1),
			}}
			go func() {
				srv, err := localch.Start(ctx, c.dirs[s][r], c.opts[s][r])
				out <- started{s, r, srv, err}
			}()
		}
	}
	var errs []string
	for range shards * replicas {
		st := <-out
		if st.err != nil {
			errs = append(errs, st.err.Error())
			continue
		}
		c.nodes[st.s][st.r] = st.srv
		c.opts[st.s][st.r] = st.srv.Options()
		tb.Cleanup(func() { _ = c.Node(st.s, st.r).Stop() })
	}
	if len(errs) > 0 {
		tb.Fatalf("testenv: start ClickHouse cluster: %s", strings.Join(errs, "; "))
	}
	return c
}

// Node is the server of shard s, replica r (from 0).
func (c *Cluster) Node(s, r int) *localch.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[s][r]
}

// Addrs lists every node's native address, shard by shard.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, shard := range c.nodes {
		for _, n := range shard {
			out = append(out, n.Addr)
		}
	}
	return out
}

// Conn opens a connection to node (s, r), closed when the test ends.
func (c *Cluster) Conn(tb testing.TB, s, r int) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.Node(s, r).Addr}, Protocol: clickhouse.Native,
		DialTimeout: 2 * time.Second, ReadTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Kill kills node (s, r) with SIGKILL, as a crash would.
func (c *Cluster) Kill(s, r int) { c.Node(s, r).Kill() }

// Restart starts node (s, r) again on its ports and data directory, after
// Kill.
func (c *Cluster) Restart(tb testing.TB, s, r int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := localch.Start(ctx, c.dirs[s][r], c.opts[s][r])
	if err != nil {
		tb.Fatalf("testenv: restart node s%d-r%d: %v", s+1, r+1, err)
	}
	c.mu.Lock()
	c.nodes[s][r] = srv
	c.mu.Unlock()
}

// logTails logs the end of every node's error log and of ZooKeeper's, for
// a failed test.
func logTails(tb testing.TB, base string) {
	logs, _ := filepath.Glob(filepath.Join(base, "*", "log", "clickhouse-server.err.log"))
	logs = append(logs, filepath.Join(base, "zk", "zookeeper.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		tb.Logf("testenv: end of %s:\n%s", l, b)
	}
}
