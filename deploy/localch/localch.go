// Package localch runs a real ClickHouse server as a child process: the local
// runner behind trustpulse's single-machine default and behind the test
// harness. It finds a server binary on PATH (`clickhouse server` of an
// official build, or `clickhouse-server` of a distribution package), writes a
// config for it into a data directory, starts it on free loopback ports and
// stops it again.
//
// The server dies with the process that started it (a parent-death signal,
// Linux), and a server left by a killed run is found through the pid file
// in its data directory and waited for or stopped before a new one starts.
package localch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a running local ClickHouse server.
type Server struct {
	// Addr is the native-protocol address, host:port.
	Addr string
	// HTTPAddr is the HTTP interface's address, host:port.
	HTTPAddr string
	// Dir is the server's data directory.
	Dir string

	tcp, http int
	cluster   *Cluster
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// ErrNotInstalled is returned when no ClickHouse server binary is on PATH.
var ErrNotInstalled = errors.New("localch: no ClickHouse server on PATH (install clickhouse-server, e.g. `apt-get install clickhouse-server`, or pass --clickhouse-addr)")

// binary returns the command that runs a server: an official single binary
// takes the `server` subcommand, a distribution package ships clickhouse-server.
func binary() ([]string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// Options tune Start.
type Options struct {
	// TCPPort and HTTPPort are the loopback ports; 0 picks free ones.
	TCPPort, HTTPPort int
	// Log receives the server's stdout and stderr; nil discards them (the
	// server also logs to Dir/log).
	Log *os.File
	// Cluster, when set, makes the server a node of a replicated cluster.
	Cluster *Cluster
	// LogLevel is the server log's level (Dir/log); "" is information.
	// Debug and finer write every query's text.
	LogLevel string
}

// Start starts a server whose data lives in dir and waits until it answers
// on its native port, or ctx ends.
func Start(ctx context.Context, dir string, opt Options) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("localch: %w", err)
		}
	}
	tcpPort, httpPort := opt.TCPPort, opt.HTTPPort
	if tcpPort == 0 {
		if tcpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if httpPort == 0 {
		if httpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	var extra string
	if c := opt.Cluster; c != nil {
		if c.InterserverPort == 0 {
			if c.InterserverPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
		if extra, err = clusterXML(c, c.InterserverPort); err != nil {
			return nil, err
		}
	}
	cfg := filepath.Join(dir, "config.xml")
	if err := clearStale(ctx, dir, cfg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg, []byte(configXML(dir, tcpPort, httpPort, extra, opt.LogLevel)), 0o640); err != nil {
		return nil, fmt.Errorf("localch: write config: %w", err)
	}
	cmd := exec.Command(bin[0], append(bin[1:], "--config-file="+cfg)...)
	cmd.Dir = dir
	if opt.Log != nil { // a nil *os.File in an io.Writer would hand the child a closed fd
		cmd.Stdout, cmd.Stderr = opt.Log, opt.Log
	}
	// Own process group, so a Ctrl-C in a terminal reaches us first and we
	// stop the server in order; a parent-death signal, so that a kill -9 of
	// this process ends the server too (in about a second: SIGTERM lets it
	// shut down cleanly). Linux sends it when the thread that started the
	// child ends; Go's runtime ends threads only of goroutines that exit
	// while locked to one, which nothing here does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localch: start %s: %w", bin[0], err)
	}
	s := &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		Dir:      dir,
		tcp:      tcpPort,
		http:     httpPort,
		cluster:  opt.Cluster,
		cmd:      cmd,
		done:     make(chan struct{}),
	}
	pid := cmd.Process.Pid
	go func() {
		s.err = cmd.Wait()
		removePidFile(dir, pid)
		close(s.done)
	}()
	if err := writePidFile(dir, pidRecord{pid: pid, owner: os.Getpid(), addr: s.Addr}); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("localch: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// PID is the server process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Options are the options that start the server again on the same ports
// (and as the same cluster node).
func (s *Server) Options() Options {
	return Options{TCPPort: s.tcp, HTTPPort: s.http, Cluster: s.cluster}
}

// Done is closed when the server process has exited, for whatever reason.
func (s *Server) Done() <-chan struct{} { return s.done }

// ExitErr is how the process ended (as exec.Cmd.Wait reports it: "signal:
// killed", "exit status 70"), once Done is closed.
func (s *Server) ExitErr() error {
	<-s.done
	return s.err
}

// waitReady polls the HTTP /ping endpoint until the server answers "Ok."
// (by then it has bound its native port too: ClickHouse binds every port
// before it serves any), the process exits, or ctx ends. A bare connect
// would be fooled by whatever else holds the port.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if s.ping(ctx) && (s.cluster == nil || s.zooKeeperSession(ctx)) {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("localch: server exited during start (%v); see %s", s.err, filepath.Join(s.Dir, "log"))
		case <-ctx.Done():
			return fmt.Errorf("localch: server not ready on %s: %w; see %s", s.Addr, ctx.Err(), filepath.Join(s.Dir, "log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// zooKeeperSession reports whether a cluster node reads ZooKeeper: its
// session is up. ClickHouse 18.16 answers /ping before that, and was seen
// to crash (SIGSEGV in zkutil::ZooKeeper::createImpl) on ON CLUSTER DDL
// sent in between.
func (s *Server) zooKeeperSession(ctx context.Context) bool {
	q := url.Values{"query": {"SELECT count() FROM system.zookeeper WHERE path = '/'"}}
	_, ok := s.get(ctx, "/?"+q.Encode(), 2*time.Second)
	return ok
}

// ping reports whether the server's HTTP interface answers /ping.
func (s *Server) ping(ctx context.Context) bool {
	b, ok := s.get(ctx, "/ping", time.Second)
	return ok && strings.TrimSpace(string(b)) == "Ok."
}

// get asks the server's HTTP interface for path within timeout and returns
// the start of the body and whether the answer was 200.
func (s *Server) get(ctx context.Context, path string, timeout time.Duration) ([]byte, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+path, nil)
	if err != nil {
		return nil, false
	}
	// No kept-alive connection: the server waits for open ones (up to ten
	// seconds) before it stops.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return b, resp.StatusCode == http.StatusOK
}

// Stop asks the server to shut down (SIGTERM), waits up to 30 seconds, then
// kills it. It is safe to call more than once.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("localch: server did not stop within 30s; killed")
	}
}

// Kill stops the server at once, as a crash would.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localch: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
