package httpproblem_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"

	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// TestUnavailable: a dependency that cannot be reached is a 503
// unavailable; a server's own error or any other is a 500 internal.
func TestUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connect: connection refused"}}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"DialRefused", fmt.Errorf("query: token: %w", refused), 503},
		{"Refused", fmt.Errorf("query: scores: %w", syscall.ECONNREFUSED), 503},
		{"Reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, 503},
		{"BrokenPipe", fmt.Errorf("write: %w", syscall.EPIPE), 503},
		{"EOF", fmt.Errorf("query: waves: %w", io.EOF), 503},
		{"PoolTimeout", fmt.Errorf("query: %w", clickhouse.ErrAcquireConnTimeout), 503},
		{"NATSClosed", fmt.Errorf("guard: %w", nats.ErrConnectionClosed), 503},
		{"NATSNoResponders", nats.ErrNoResponders, 503},
		{"Deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), 503},
		{"Exception", fmt.Errorf("query: scores: %w", &clickhouse.Exception{Code: 47, Message: "Unknown identifier: x"}), 500},
		{"NoRows", fmt.Errorf("query: %w", sql.ErrNoRows), 500},
		{"Other", errors.New("index out of range"), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			e := httpproblem.From(log, "/x", tc.err)
			wantCode := map[int]string{503: "unavailable", 500: "internal"}[tc.want]
			if e.Status != tc.want || e.Code != wantCode {
				t.Errorf("From(%v) = %d %s, want %d %s", tc.err, e.Status, e.Code, tc.want, wantCode)
			}
		})
	}
}
