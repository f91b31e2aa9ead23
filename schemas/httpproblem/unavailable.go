package httpproblem

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Unavailable reports whether err says that a server trustpulse depends on
// (ClickHouse, NATS) is not reachable, rather than that a request or a
// statement is wrong: a refused, reset or closed connection, a failed
// dial, a connection pool that found no connection, NATS disconnected or
// without responders. From answers those with 503 unavailable. A server's
// own error (a ClickHouse exception, a JetStream API error) is not one of
// them: it stays a 500 and is logged as the bug it is.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range unavailableErrs {
		if errors.Is(err, target) {
			return true
		}
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

var unavailableErrs = []error{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
	driver.ErrBadConn, clickhouse.ErrAcquireConnTimeout, clickhouse.ErrConnectionClosed,
	nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrConnectionReconnecting,
	nats.ErrDisconnected, nats.ErrNoServers, nats.ErrNoResponders, nats.ErrTimeout,
	jetstream.ErrNoStreamResponse, jetstream.ErrNoHeartbeat,
}
