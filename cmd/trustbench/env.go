package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// env is what the benchmarks run against: an embedded NATS JetStream
// server and a local ClickHouse server of the harness's own, and the
// product's parts as separate processes of bin/trustpulse (one per
// --target), so that each part's memory can be read on its own.
type env struct {
	dir  string
	nats *natsrv.Server
	// syncAlways is the NATS server's fsync setting (--nats-sync).
	syncAlways bool
	// alt is a second NATS server with the other fsync setting, started
	// by altJetStream for the ingest limit's comparison column.
	alt    *natsrv.Server
	altNC  *nats.Conn
	nc     *nats.Conn
	js     jetstream.JetStream
	chSrv  *localch.Server
	ch     driver.Conn
	chCfg  deploy.ClickHouseConfig
	admin  *ingest.Admin
	ledger *ingest.Ledger
	cat    *ingest.Catalog
	bin    string
	log    *slog.Logger
	procs  map[string]*proc
	// profileDir is the report's directory: CPU profiles are saved in its
	// profiles/ folder.
	profileDir string
}

// proc is a running part of the product.
type proc struct {
	cmd  *exec.Cmd
	addr string
	// metricsAddr serves /metrics and, with --pprof, the CPU profiles.
	metricsAddr string
}

func startEnv(ctx context.Context, dir, bin string, syncAlways bool, log *slog.Logger) (*env, error) {
	e := &env{dir: dir, bin: bin, log: log, procs: map[string]*proc{}, syncAlways: syncAlways}
	var err error
	if e.nats, err = natsrv.Start(natsrv.Options{StoreDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:-1", ServerName: "bench", SyncAlways: syncAlways}); err != nil {
		return nil, err
	}
	if e.nc, err = deploy.ConnectNATS(e.nats.URL(), "trustbench"); err != nil {
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	if err := deploy.EnsureStreams(ctx, e.js, 1, 1); err != nil {
		return nil, err
	}
	if e.chSrv, err = localch.Start(ctx, filepath.Join(dir, "clickhouse"), localch.Options{}); err != nil {
		return nil, err
	}
	e.chCfg = deploy.ClickHouseConfig{Addr: e.chSrv.Addr, Database: "trustpulse", User: "default"}
	if e.ch, err = deploy.OpenClickHouse(ctx, e.chCfg); err != nil {
		return nil, err
	}
	if err := schemas.Migrate(ctx, e.ch, log); err != nil {
		return nil, err
	}
	if e.ledger, err = ingest.OpenLedger(ctx, e.js); err != nil {
		return nil, err
	}
	if e.cat, err = ingest.StartCatalog(ctx, e.js, log); err != nil {
		return nil, err
	}
	e.admin = ingest.NewAdmin(e.js, e.ledger, e.cat, time.Now)
	return e, nil
}

// altJetStream starts (once) a second embedded NATS server in the
// harness's process, alike but for the other fsync setting, and returns a
// JetStream client of it.
func (e *env) altJetStream() (jetstream.JetStream, error) {
	if e.alt == nil {
		srv, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(e.dir, "nats-alt"), Listen: "127.0.0.1:-1", ServerName: "bench-alt", SyncAlways: !e.syncAlways})
		if err != nil {
			return nil, err
		}
		e.alt = srv
		if e.altNC, err = deploy.ConnectNATS(srv.URL(), "trustbench-alt"); err != nil {
			return nil, err
		}
	}
	return jetstream.New(e.altNC)
}

// syncName names a fsync setting as --nats-sync does.
func syncName(always bool) string {
	if always {
		return "always"
	}
	return "interval"
}

// start runs `trustpulse serve --target target` against the harness's
// servers and waits until it answers on its HTTP address (if any).
func (e *env) start(ctx context.Context, target string) (*proc, error) {
	return e.startAs(ctx, target, target)
}

// startAs runs another process of a target under its own name (its data
// directory, log file and entry in e.procs), with extra flags after the
// harness's own (a flag given twice takes the last value).
func (e *env) startAs(ctx context.Context, name, target string, extra ...string) (*proc, error) {
	port, err := localch.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// Metrics on, as in production, each process on a port of its own.
	metricsPort, err := localch.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--target", target, "--nats-url", e.nats.URL(), "--clickhouse-addr", e.chCfg.Addr,
		"--clickhouse-database", e.chCfg.Database, "--data-dir", filepath.Join(e.dir, name), "--log-level", "warn",
		"--ingest-addr", addr, "--query-addr", addr, "--seal-grace", "1s", "--metrics-addr", "127.0.0.1:" + strconv.Itoa(metricsPort), "--pprof"}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, e.bin, args...)
	logFile, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", target, err)
	}
	p := &proc{cmd: cmd, addr: addr, metricsAddr: "127.0.0.1:" + strconv.Itoa(metricsPort)}
	e.procs[name] = p
	if target == "projector" {
		return p, nil
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not come up on %s (see %s.log)", name, addr, name)
		}
	}
}

// stop ends a process started by start or startAs and forgets it.
func (e *env) stop(name string) {
	p, ok := e.procs[name]
	if !ok {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	delete(e.procs, name)
}

// peakRSS is a process's peak resident set (VmHWM), in MiB.
func (p *proc) peakRSS() (float64, error) { return p.status("VmHWM") }

// rss is a process's resident set now (VmRSS), in MiB.
func (p *proc) rss() (float64, error) { return p.status("VmRSS") }

// status reads a size in kB from the process's /proc status, in MiB.
func (p *proc) status(field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024, err
		}
	}
	if strings.Contains(string(b), "State:\tZ") {
		return 0, fmt.Errorf("process %d (%s) has exited; see its log in the work directory", p.cmd.Process.Pid, strings.Join(p.cmd.Args[1:4], " "))
	}
	return 0, fmt.Errorf("no %s for pid %d", field, p.cmd.Process.Pid)
}

func (e *env) close() {
	for _, p := range e.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
	if e.cat != nil {
		e.cat.Stop()
	}
	if e.ch != nil {
		e.ch.Close()
	}
	if e.chSrv != nil {
		_ = e.chSrv.Stop()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.nats != nil {
		e.nats.Stop()
	}
	if e.altNC != nil {
		e.altNC.Close()
	}
	if e.alt != nil {
		e.alt.Stop()
	}
}

// versions names what ran.
func (e *env) versions(ctx context.Context) (ch string) {
	var v string
	if err := e.ch.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// connections opens n NATS connections of their own to the harness's
// server, each with its JetStream client, and the function that closes
// them: the limit as `nats bench` measures it, a connection per client.
func (e *env) connections(n int) ([]jetstream.JetStream, func(), error) {
	var conns []*nats.Conn
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	out := make([]jetstream.JetStream, n)
	for i := range out {
		nc, err := deploy.ConnectNATS(e.nats.URL(), fmt.Sprintf("trustbench-limit-%d", i))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, nc)
		if out[i], err = jetstream.New(nc); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return out, closeAll, nil
}
