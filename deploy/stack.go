package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/schemas"
)

// StackConfig says which servers to use.
type StackConfig struct {
	// DataDir holds the embedded NATS store and the local ClickHouse data.
	DataDir string
	// NATSURL is an external NATS server or cluster; empty means the
	// embedded server, listening on NATSListen.
	NATSURL    string
	NATSListen string
	// Replicas of streams, buckets and consumers (1 on one server).
	Replicas int
	// Partitions is the event stream's partition count when the stack
	// creates it, and must match it otherwise (ErrPartitionMismatch),
	// unless Repartition (a replay that changes the count) is set.
	Partitions  int
	Repartition bool
	// NATSSyncAlways makes the embedded server fsync before every
	// acknowledgement (natsrv.Options.SyncAlways).
	NATSSyncAlways bool
	// ClickHouse.Addr empty means the local server process under DataDir.
	ClickHouse ClickHouseConfig
	// NeedNATS and NeedClickHouse select what to open.
	NeedNATS, NeedClickHouse bool
	// Own makes the stack start the local defaults itself and fail if they
	// already run (serve); otherwise it joins running ones and starts them
	// only when none run (admin commands).
	Own bool
	// Name identifies the NATS connection.
	Name string
	// NATSOptions are added to the NATS connection's (metrics' handlers).
	NATSOptions []nats.Option
	// ClickHouseRestarted, when set, is called each time the supervisor
	// starts the local ClickHouse again after it exited.
	ClickHouseRestarted func()
}

// EmbeddedNATS is the embedded NATS server the stack started, or nil.
func (st *Stack) EmbeddedNATS() *natsrv.Server { return st.natsSrv }

// Stack is an open set of connections, and the local servers it started.
type Stack struct {
	NC *nats.Conn
	JS jetstream.JetStream
	CH driver.Conn
	// NATSURL and ClickHouseAddr are where the stack is connected.
	NATSURL        string
	ClickHouseAddr string

	natsSrv *natsrv.Server
	log     *slog.Logger
	// chRestarted is StackConfig.ClickHouseRestarted.
	chRestarted func()

	// chSrv is the local ClickHouse server the stack started, replaced by
	// its supervisor when it restarts it; stopSupervisor ends that and
	// supervised is closed once it has.
	chMu           sync.Mutex
	chSrv          *localch.Server
	stopSupervisor context.CancelFunc
	supervised     chan struct{}
}

// LocalClickHouse is the local ClickHouse server the stack runs now, or nil.
func (st *Stack) LocalClickHouse() *localch.Server {
	st.chMu.Lock()
	defer st.chMu.Unlock()
	return st.chSrv
}

// Open connects to (and if need be starts) the servers of cfg, creates the
// streams and buckets and runs the ClickHouse migrations. On error it
// closes whatever it opened.
//
// With Own, a local ClickHouse that already runs for another live process
// is an error (*localch.RunningError), found before anything starts; one
// left by a killed run is waited for or stopped.
func Open(ctx context.Context, cfg StackConfig, log *slog.Logger) (*Stack, error) {
	st := &Stack{log: log, chRestarted: cfg.ClickHouseRestarted}
	if cfg.Own && cfg.NeedClickHouse && cfg.ClickHouse.Addr == "" {
		if err := localch.ClearStale(ctx, localDir(cfg.DataDir)); err != nil {
			return nil, err
		}
	}
	if cfg.NeedNATS {
		if err := st.openNATS(ctx, cfg); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	if cfg.NeedClickHouse {
		if err := st.openClickHouse(ctx, cfg); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	return st, nil
}

func (st *Stack) openNATS(ctx context.Context, cfg StackConfig) error {
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSListen
		running := reachable(cfg.NATSListen)
		switch {
		case running && cfg.Own:
			return fmt.Errorf("deploy: something already listens on %s; is another trustpulse serve running? (set --nats-listen, or --nats-url to use it)", cfg.NATSListen)
		case !running:
			srv, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, SyncAlways: cfg.NATSSyncAlways})
			if err != nil {
				return err
			}
			st.natsSrv, url = srv, srv.URL()
			st.log.Info("embedded NATS started", "url", url, "store", filepath.Join(cfg.DataDir, "nats"), "sync_always", cfg.NATSSyncAlways)
		}
	}
	nc, err := ConnectNATS(url, cfg.Name, cfg.NATSOptions...)
	if err != nil {
		return err
	}
	st.NC, st.NATSURL = nc, url
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("deploy: jetstream: %w", err)
	}
	st.JS = js
	return ensureStreams(ctx, js, max(cfg.Replicas, 1), max(cfg.Partitions, 1), cfg.Repartition)
}

// localDir is the local ClickHouse's data directory.
func localDir(dataDir string) string { return filepath.Join(dataDir, "clickhouse") }

func (st *Stack) openClickHouse(ctx context.Context, cfg StackConfig) error {
	ch := cfg.ClickHouse
	if ch.Addr == "" {
		// Admin commands use the server of a running serve; serve (Own)
		// starts its own, and localch refuses when another process runs one.
		if addr, ok := localch.Running(localDir(cfg.DataDir)); ok && !cfg.Own {
			ch.Addr = addr
		} else {
			srv, err := localch.Start(ctx, localDir(cfg.DataDir), localch.Options{})
			if err != nil {
				return err
			}
			st.chSrv, ch.Addr = srv, srv.Addr
			st.log.Info("local ClickHouse started", "addr", srv.Addr, "dir", srv.Dir, "pid", srv.PID())
			sctx, cancel := context.WithCancel(context.Background())
			st.stopSupervisor, st.supervised = cancel, make(chan struct{})
			go st.superviseClickHouse(sctx, srv)
		}
	}
	conn, err := OpenClickHouse(ctx, ch)
	if err != nil {
		return err
	}
	st.CH, st.ClickHouseAddr = conn, ch.Addr
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return schemas.MigrateCluster(mctx, conn, ch.SchemaCluster(), st.log)
}

// reachable reports whether something accepts TCP connections at addr.
func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Close closes the connections, then stops the servers the stack started:
// NATS last-in-first-out after its clients, ClickHouse gracefully. A nil
// Stack closes as nothing.
func (st *Stack) Close() error {
	if st == nil {
		return nil
	}
	var errs []error
	if st.CH != nil {
		errs = append(errs, st.CH.Close())
	}
	if st.NC != nil {
		st.NC.Close()
	}
	if st.natsSrv != nil {
		st.natsSrv.Stop()
		st.log.Info("embedded NATS stopped")
	}
	if st.stopSupervisor != nil {
		st.stopSupervisor()
		<-st.supervised
	}
	if srv := st.LocalClickHouse(); srv != nil {
		errs = append(errs, srv.Stop())
		st.log.Info("local ClickHouse stopped")
	}
	return errors.Join(errs...)
}
