// Package testenv is the test harness: it starts real servers for tests, an
// embedded NATS JetStream server per test and one local ClickHouse server
// per test binary with a fresh database per test, in temporary directories
// on free loopback ports, and cleans up after them; ClickHouseCluster
// starts a replicated, sharded ClickHouse cluster with its ZooKeeper
// (cluster.go). Nothing needs to run
// beforehand; a missing ClickHouse binary fails the test with the command
// that installs it.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/schemas"
)

var (
	chOnce sync.Once
	chSrv  *localch.Server
	chErr  error
	chDir  string
	dbSeq  atomic.Int64
)

// Main runs a package's tests and stops the shared ClickHouse server after
// them. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if chSrv != nil {
		_ = chSrv.Stop()
	}
	if chDir != "" {
		os.RemoveAll(chDir)
	}
	os.Exit(code)
}

// ClickHouseServer returns the shared local ClickHouse server of this test
// binary, starting it on first use.
func ClickHouseServer(tb testing.TB) *localch.Server {
	tb.Helper()
	chOnce.Do(func() {
		chDir, chErr = os.MkdirTemp("", "trustpulse-ch-")
		if chErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		chSrv, chErr = localch.Start(ctx, chDir, localch.Options{})
	})
	if chErr != nil {
		tb.Fatalf("testenv: start ClickHouse: %v", chErr)
	}
	return chSrv
}

// ClickHouse returns a connection to a fresh, migrated database on the
// shared server; the database is dropped when the test ends.
func ClickHouse(tb testing.TB) (driver.Conn, deploy.ClickHouseConfig) {
	tb.Helper()
	srv := ClickHouseServer(tb)
	cfg := deploy.ClickHouseConfig{
		Addr:     srv.Addr,
		Database: fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1)),
		User:     "default",
	}
	ctx := context.Background()
	conn, err := deploy.OpenClickHouse(ctx, cfg)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := schemas.Migrate(ctx, conn, Logger(tb)); err != nil {
		tb.Fatalf("testenv: migrate: %v", err)
	}
	tb.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		conn.Close()
	})
	return conn, cfg
}

// NATS starts an embedded NATS JetStream server for one test, with the
// event stream and buckets created, and returns it with a JetStream client.
func NATS(tb testing.TB) (*natsrv.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return NATSPartitioned(tb, 1)
}

// NATSPartitioned is NATS with the event stream split into n partitions.
func NATSPartitioned(tb testing.TB, n int) (*natsrv.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	srv, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(tb.TempDir(), "nats"), Listen: "127.0.0.1:-1"})
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(srv.Stop)
	nc, err := deploy.ConnectNATS(srv.URL(), tb.Name())
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := deploy.EnsureStreams(context.Background(), js, 1, n); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return srv, nc, js
}

// Logger returns a logger that writes through tb.Log, so output shows only
// for failing tests (or with -v).
// Lines logged after the test has ended are dropped.
func Logger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tbWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
