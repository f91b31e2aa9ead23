package metrics

import (
	"context"
	"database/sql"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouse returns conn with every failed call counted in
// trustpulse_clickhouse_errors_total by operation: query (Query, QueryRow,
// Select and reading their rows), exec, insert (PrepareBatch, Flush, Send)
// and ping. A cancelled context (the client went away) and a query without
// rows are no ClickHouse error. A nil Metrics returns conn as it is.
func (m *Metrics) ClickHouse(conn driver.Conn) driver.Conn {
	if m == nil {
		return conn
	}
	return &chConn{Conn: conn, m: m}
}

// ClickHouseRestarted counts a restart of the local ClickHouse server.
func (m *Metrics) ClickHouseRestarted() {
	if m != nil {
		m.clickhouseRestarts.Inc()
	}
}

// failed counts err under op, when it is a failure of ClickHouse, and
// returns it.
func (m *Metrics) failed(op string, err error) error {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, sql.ErrNoRows) {
		m.clickhouseErrors.WithLabelValues(op).Inc()
	}
	return err
}

// chConn counts the errors of the calls it passes on to Conn.
type chConn struct {
	driver.Conn
	m *Metrics
}

func (c *chConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	return c.m.failed("query", c.Conn.Select(ctx, dest, query, args...))
}

func (c *chConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	rows, err := c.Conn.Query(ctx, query, args...)
	if err != nil {
		return nil, c.m.failed("query", err)
	}
	return &chRows{Rows: rows, m: c.m}, nil
}

func (c *chConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return &chRow{Row: c.Conn.QueryRow(ctx, query, args...), m: c.m}
}

func (c *chConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		return nil, c.m.failed("insert", err)
	}
	return &chBatch{Batch: b, m: c.m}, nil
}

func (c *chConn) Exec(ctx context.Context, query string, args ...any) error {
	return c.m.failed("exec", c.Conn.Exec(ctx, query, args...))
}

func (c *chConn) Ping(ctx context.Context) error { return c.m.failed("ping", c.Conn.Ping(ctx)) }

// chRows counts the error that ends reading a query's rows, once.
type chRows struct {
	driver.Rows
	m       *Metrics
	counted bool
}

func (r *chRows) Err() error {
	err := r.Rows.Err()
	if err != nil && !r.counted {
		r.counted = true
		r.m.failed("query", err)
	}
	return err
}

// chRow counts a QueryRow's error, found by Scan or Err, once.
type chRow struct {
	driver.Row
	m       *Metrics
	counted bool
}

func (r *chRow) count(err error) error {
	if err != nil && !r.counted {
		r.counted = true
		r.m.failed("query", err)
	}
	return err
}

func (r *chRow) Err() error                { return r.count(r.Row.Err()) }
func (r *chRow) Scan(dest ...any) error    { return r.count(r.Row.Scan(dest...)) }
func (r *chRow) ScanStruct(dest any) error { return r.count(r.Row.ScanStruct(dest)) }

// chBatch counts the errors of sending an insert's rows.
type chBatch struct {
	driver.Batch
	m *Metrics
}

func (b *chBatch) Flush() error { return b.m.failed("insert", b.Batch.Flush()) }
func (b *chBatch) Send() error  { return b.m.failed("insert", b.Batch.Send()) }
