package localch

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// TestStartClearsServerOfKilledRun: a second start on a data directory
// whose server runs for a live process is refused with RunningError; a
// server whose owner is gone (a killed run) is stopped, and a new one
// starts.
func TestStartClearsServerOfKilledRun(t *testing.T) {
	if _, err := binary(); err != nil {
		t.Skip(err)
	}
	defer func(d time.Duration) { orphanExitWait = d }(orphanExitWait)
	orphanExitWait = 200 * time.Millisecond // the stand-in orphan gets no parent-death signal
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	old, err := Start(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Stop()
	if addr, ok := Running(dir); !ok || addr != old.Addr {
		t.Fatalf("Running: %q %v, want %s true", addr, ok, old.Addr)
	}
	var re *RunningError
	if srv, err := Start(ctx, dir, Options{}); !errors.As(err, &re) || re.PID != old.PID() {
		if srv != nil {
			srv.Stop()
		}
		t.Fatalf("second start: %v, want a RunningError naming pid %d", err, old.PID())
	}

	// Its owner dies: a finished process's pid stands in for it.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := writePidFile(old.Dir, pidRecord{pid: old.PID(), owner: gone.Process.Pid, addr: old.Addr}); err != nil {
		t.Fatal(err)
	}
	if _, ok := Running(dir); ok {
		t.Fatal("Running: a server whose owner is gone counts as running")
	}
	next, err := Start(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("start after a killed run: %v", err)
	}
	defer next.Stop()
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server of the killed run still runs")
	}
	if r, ok := readPidFile(next.Dir); !ok || r.pid != next.PID() {
		t.Fatalf("pid file %+v %v, want pid %d", r, ok, next.PID())
	}
}
