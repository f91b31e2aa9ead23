package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/localch"
)

// serveProc is `trustpulse serve` running as a process of its own.
type serveProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startServe starts the test binary as `trustpulse serve args...`; the
// process is killed when the test ends if it still runs.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p := &serveProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("serve %v stderr:\n%s", args, p.stderr)
		}
	})
	return p
}

// exitStatus waits for the process to end and returns its exit status.
func (p *serveProc) exitStatus(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve still runs; stderr:\n%s", p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// waitReady waits until GET url/readyz answers 200.
func (p *serveProc) waitReady(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited (%v) before %s was ready; stderr:\n%s", p.err, url, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz never answered 200; stderr:\n%s", url, p.stderr)
		}
	}
}

// assertOneLineFailure requires a failed start: exit status 1 and one line
// on stderr, no panic.
func assertOneLineFailure(t *testing.T, p *serveProc, want string) {
	t.Helper()
	status := p.exitStatus(t)
	out := p.stderr.String()
	if status != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, want) ||
		strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
		t.Errorf("exit status %d, stderr %q; want 1 and one line naming %q", status, out, want)
	}
}

// freeAddr is a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := localch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// localServer reads the local ClickHouse's pid file: the server's pid and
// its owner's.
func localServer(t *testing.T, dataDir string) (pid, owner int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "clickhouse", "server.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(b), &pid, &owner); err != nil {
		t.Fatalf("server.pid %q: %v", b, err)
	}
	return pid, owner
}

// waitGone waits until pid is no live process (gone, or a zombie).
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(b, ')'); err != nil || (i > 0 && len(b) > i+2 && b[i+2] == 'Z') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, pid)
		}
	}
}

// TestRestartAfterKill: after a kill -9 of serve its local ClickHouse child
// dies too, and serve started again at once, on the same ports and data
// directory, comes up ready; a second serve beside a running one fails
// with one line and exit status 1, never a panic (issue 12, item 2).
func TestRestartAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve three times")
	}
	dir := t.TempDir()
	ingest, query, nats := freeAddr(t), freeAddr(t), freeAddr(t)
	data := filepath.Join(dir, "data")
	args := []string{"--data-dir", data, "--seal-key-file", filepath.Join(dir, "seal.key"),
		"--ingest-addr", ingest, "--query-addr", query, "--nats-listen", nats, "--metrics-addr", freeAddr(t)}

	first := startServe(t, args...)
	first.waitReady(t, "http://"+query)
	first.waitReady(t, "http://"+ingest)
	chPID, owner := localServer(t, data)
	if owner != first.cmd.Process.Pid {
		t.Fatalf("the local ClickHouse's owner is %d, want serve's pid %d", owner, first.cmd.Process.Pid)
	}

	t.Run("SecondServeSamePorts", func(t *testing.T) {
		assertOneLineFailure(t, startServe(t, args...), ingest)
	})
	t.Run("SecondServeSameDataDir", func(t *testing.T) {
		other := []string{"--data-dir", data, "--seal-key-file", filepath.Join(dir, "seal.key"),
			"--ingest-addr", freeAddr(t), "--query-addr", freeAddr(t), "--nats-listen", freeAddr(t), "--metrics-addr", freeAddr(t)}
		assertOneLineFailure(t, startServe(t, other...), fmt.Sprint("pid ", chPID))
	})

	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	second := startServe(t, args...)
	waitGone(t, chPID, "the ClickHouse child of the killed serve")
	second.waitReady(t, "http://"+query)
	second.waitReady(t, "http://"+ingest)
	newPID, owner := localServer(t, data)
	if newPID == chPID || owner != second.cmd.Process.Pid {
		t.Errorf("after the restart the local ClickHouse is pid %d of %d, want a new one of %d", newPID, owner, second.cmd.Process.Pid)
	}
	if out := second.stderr.String(); strings.Contains(out, "panic") {
		t.Errorf("restart after kill -9: %s", out)
	}

	// A clean stop stops the child too.
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	if status := second.exitStatus(t); status != 0 {
		t.Errorf("serve after SIGTERM: exit status %d", status)
	}
	waitGone(t, newPID, "the ClickHouse child of the stopped serve")
}

// TestServeStartFailures: bad flags, a busy port, a data directory that
// cannot be made: one line on stderr and exit status 1, never a panic.
func TestServeStartFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(extra ...string) []string {
		return append([]string{"--data-dir", filepath.Join(dir, "data"), "--seal-key-file", filepath.Join(dir, "seal.key"),
			"--ingest-addr", freeAddr(t), "--query-addr", freeAddr(t), "--nats-listen", freeAddr(t), "--metrics-addr", freeAddr(t)}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"UnknownFlag", base("--no-such-flag"), "-no-such-flag"},
		{"BadValue", base("--threshold", "many"), "-threshold"},
		{"Invalid", base("--threshold", "1", "--batch-size", "0"), "--batch-size 0"},
		{"BusyIngestPort", base("--ingest-addr", busy.Addr().String()), busy.Addr().String()},
		{"BusyQueryPort", base("--query-addr", busy.Addr().String()), busy.Addr().String()},
		{"BusyNATSPort", base("--nats-listen", busy.Addr().String()), busy.Addr().String()},
		{"BusyMetricsPort", base("--metrics-addr", busy.Addr().String()), "--metrics-addr " + busy.Addr().String()},
		{"BadMetricsAddr", base("--metrics-addr", "9464"), "--metrics-addr"},
		{"DataDirIsFile", base("--data-dir", filepath.Join(file, "data")), "--data-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertOneLineFailure(t, startServe(t, tc.args...), tc.want)
		})
	}
}
