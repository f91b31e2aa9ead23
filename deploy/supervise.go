package deploy

import (
	"context"
	"time"

	"github.com/trustpulse/trustpulse/deploy/localch"
)

// The pause before the local ClickHouse is started again after it exits:
// firstRestartWait, doubling with each failed start in a row up to
// maxRestartWait, and back to the first once a server has run for
// stableRun.
const (
	firstRestartWait = 500 * time.Millisecond
	maxRestartWait   = 30 * time.Second
	stableRun        = time.Minute
)

// superviseClickHouse starts the local ClickHouse server again, on the same
// ports, whenever it exits without Close asking it to, until ctx ends. The
// connection pool reconnects by itself; meanwhile readiness says not ready
// and queries answer 503.
func (st *Stack) superviseClickHouse(ctx context.Context, srv *localch.Server) {
	defer close(st.supervised)
	attempt := 0
	for {
		up := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-srv.Done():
		}
		if time.Since(up) >= stableRun {
			attempt = 0
		}
		attempt++
		wait := restartWait(attempt)
		st.log.Error("clickhouse exited; restarting", "status", srv.ExitErr(), "attempt", attempt, "retry_in", wait, "addr", srv.Addr)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			next, err := localch.Start(ctx, srv.Dir, srv.Options())
			if ctx.Err() != nil {
				if next != nil {
					_ = next.Stop()
				}
				return
			}
			if err == nil {
				st.chMu.Lock()
				st.chSrv = next
				st.chMu.Unlock()
				srv = next
				st.log.Info("clickhouse restarted", "attempt", attempt, "addr", srv.Addr, "pid", srv.PID())
				if st.chRestarted != nil {
					st.chRestarted()
				}
				break
			}
			attempt++
			wait = restartWait(attempt)
			st.log.Error("clickhouse did not start; retrying", "err", err, "attempt", attempt, "retry_in", wait)
		}
	}
}

// restartWait is the pause before the attempt-th start in a row.
func restartWait(attempt int) time.Duration {
	return min(firstRestartWait<<min(attempt-1, 10), maxRestartWait)
}
