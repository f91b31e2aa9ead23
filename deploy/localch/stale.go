package localch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The pid file records the running server of a data directory: its pid,
// the pid of the process that started it (its owner) and its native
// address, "PID OWNER ADDR\n". It lets a new start tell a server left by a
// killed run from one another live process runs.
func pidFile(dir string) string { return filepath.Join(dir, "server.pid") }

type pidRecord struct {
	pid, owner int
	addr       string
}

func writePidFile(dir string, r pidRecord) error {
	return os.WriteFile(pidFile(dir), fmt.Appendf(nil, "%d %d %s\n", r.pid, r.owner, r.addr), 0o640)
}

// readPidFile returns the record, or ok false when there is none (or it is
// unreadable, which a crash mid-write can leave).
func readPidFile(dir string) (r pidRecord, ok bool) {
	b, err := os.ReadFile(pidFile(dir))
	if err != nil {
		return r, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return r, false
	}
	var err1, err2 error
	r.pid, err1 = strconv.Atoi(f[0])
	r.owner, err2 = strconv.Atoi(f[1])
	r.addr = f[2]
	return r, err1 == nil && err2 == nil && r.pid > 0
}

// removePidFile removes the pid file if it still names pid.
func removePidFile(dir string, pid int) {
	if r, ok := readPidFile(dir); ok && r.pid == pid {
		_ = os.Remove(pidFile(dir))
	}
}

// RunningError is returned by Start when the server of the data directory
// already runs for another live process (another trustpulse serve, or an
// admin command that started it).
type RunningError struct {
	Dir   string
	PID   int    // the server's
	Owner int    // the process that started it
	Addr  string // its native address
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("localch: the ClickHouse server of %s already runs (pid %d, %s), started by the running process %d; is another trustpulse serve running?", e.Dir, e.PID, e.Addr, e.Owner)
}

// ClearStale makes sure that no ClickHouse server runs on dir, so that
// Start can start one: it returns a *RunningError when one runs for another
// live process, and waits for or stops one left by a killed run. Start
// calls it; a caller that wants that answer before it starts anything else
// calls it first.
func ClearStale(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	return clearStale(ctx, dir, filepath.Join(dir, "config.xml"))
}

// Running returns the native address of the server that runs on dir for a
// live process, if one does.
func Running(dir string) (addr string, ok bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	r, ok := readPidFile(dir)
	if !ok || !serverOf(r.pid, filepath.Join(dir, "config.xml")) || !alive(r.owner) || parentOf(r.pid) != r.owner {
		return "", false
	}
	return r.addr, true
}

// How long clearStale waits for a server left by a killed run: first for
// its parent-death signal to end it, then after a SIGTERM of its own,
// before it kills it.
var (
	orphanExitWait = 5 * time.Second
	orphanTermWait = 30 * time.Second
)

// clearStale makes sure no server runs on dir before a new one starts. A
// server whose owner lives is another process's: RunningError. One whose
// owner is gone is left by a killed run; its parent-death signal (SIGTERM)
// ends it within about a second, so clearStale waits for that, then stops
// it itself. A pid file that names no server of this config is removed.
func clearStale(ctx context.Context, dir, cfg string) error {
	r, ok := readPidFile(dir)
	if !ok {
		return nil
	}
	if !serverOf(r.pid, cfg) {
		_ = os.Remove(pidFile(dir))
		return nil
	}
	if alive(r.owner) && parentOf(r.pid) == r.owner {
		return &RunningError{Dir: dir, PID: r.pid, Owner: r.owner, Addr: r.addr}
	}
	if !waitExit(ctx, r.pid, cfg, orphanExitWait) {
		_ = syscall.Kill(r.pid, syscall.SIGTERM)
		if !waitExit(ctx, r.pid, cfg, orphanTermWait) {
			_ = syscall.Kill(r.pid, syscall.SIGKILL)
			if !waitExit(ctx, r.pid, cfg, 5*time.Second) {
				if ctx.Err() != nil {
					return fmt.Errorf("localch: waiting for the ClickHouse server left by a killed run (pid %d, %s) to stop: %w", r.pid, r.addr, ctx.Err())
				}
				return fmt.Errorf("localch: the ClickHouse server left by a killed run (pid %d, %s) does not stop; stop it and start again", r.pid, r.addr)
			}
		}
	}
	_ = os.Remove(pidFile(dir))
	return nil
}

// waitExit waits up to d for the server pid of cfg to be gone.
func waitExit(ctx context.Context, pid int, cfg string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for serverOf(pid, cfg) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// serverOf reports whether pid is a live (not zombie) ClickHouse server
// run with the config file cfg.
func serverOf(pid int, cfg string) bool {
	if !alive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	if len(args) == 0 || !strings.Contains(filepath.Base(string(args[0])), "clickhouse") {
		return false
	}
	for _, a := range args[1:] {
		if string(a) == "--config-file="+cfg {
			return true
		}
	}
	return false
}

// alive reports whether pid is a process that has not exited (a zombie,
// which an init that does not reap leaves, has).
func alive(pid int) bool {
	state, _, ok := stat(pid)
	return ok && state != 'Z' && state != 'X'
}

// parentOf is pid's parent, or 0.
func parentOf(pid int) int {
	_, ppid, _ := stat(pid)
	return ppid
}

// stat reads a process's state and parent from /proc/PID/stat.
func stat(pid int) (state byte, ppid int, ok bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}
