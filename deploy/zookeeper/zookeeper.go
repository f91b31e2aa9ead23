// Package zookeeper runs a real Apache ZooKeeper server (Debian's
// `zookeeper` package, deploy/scripts/ensure-zookeeper.sh) as a child
// process on a loopback port with a data directory of its own: the
// coordinator of the ClickHouse cluster the tests start (replication and ON
// CLUSTER DDL). It is a test and development runner, not a production
// ensemble: one standalone server, short ticks.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Jar is the server's jar as Debian installs it; its manifest names the
// libraries it needs.
const Jar = "/usr/share/java/zookeeper.jar"

// ErrNotInstalled is returned when ZooKeeper or java is missing.
var ErrNotInstalled = errors.New("zookeeper: not installed (run deploy/scripts/ensure-zookeeper.sh, i.e. apt-get install zookeeper)")

// Server is a running standalone ZooKeeper server.
type Server struct {
	// Addr is the client address, 127.0.0.1:port.
	Addr string
	// Dir holds its config, data and log.
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts a server whose data lives in dir, on port (0 picks a free
// one), and waits until it serves requests or ctx ends.
func Start(ctx context.Context, dir string, port int) (*Server, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if _, err := os.Stat(Jar); err != nil {
		return nil, ErrNotInstalled
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("zookeeper: free port: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	// Short ticks: sessions (ClickHouse asks for 10 s) expire within
	// seconds of a killed node. No admin server (it would take port 8080).
	cfg := fmt.Sprintf("tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\nmaxSessionTimeout=60000\n", filepath.Join(dir, "data"), port)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil {
		return nil, fmt.Errorf("zookeeper: write config: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	cp := Jar + ":/usr/share/java/slf4j-simple.jar"
	cmd := exec.Command(java, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
		"-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", cfgPath)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("zookeeper: start: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if s.serving() {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("zookeeper: exited during start (%v); see %s", s.err, filepath.Join(s.Dir, "zookeeper.log"))
		case <-ctx.Done():
			return fmt.Errorf("zookeeper: not ready on %s: %w; see %s", s.Addr, ctx.Err(), filepath.Join(s.Dir, "zookeeper.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serving asks with the four-letter word srvr whether the server serves
// requests. ruok is not enough: it answers imok while the server still
// refuses sessions ("ZooKeeperServer not running"), and ClickHouse 18.16
// was seen to crash (SIGSEGV in its DDL worker) after such a refusal.
func (s *Server) serving() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return strings.Contains(string(b), "Mode: standalone")
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s). Safe to call
// more than once.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
