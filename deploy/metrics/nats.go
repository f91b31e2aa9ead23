package metrics

import (
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// NATSOptions are the options of a NATS connection that count (and log)
// its disconnects, reconnects and asynchronous errors. A nil Metrics only
// logs. A connection's own Close is no disconnect.
func (m *Metrics) NATSOptions(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return
			}
			m.inc(func(m *Metrics) prometheus.Counter { return m.natsDisconnects })
			log.Warn("nats disconnected; reconnecting", "conn", nc.Opts.Name, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.inc(func(m *Metrics) prometheus.Counter { return m.natsReconnects })
			log.Info("nats reconnected", "conn", nc.Opts.Name, "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, _ *nats.Subscription, err error) {
			m.inc(func(m *Metrics) prometheus.Counter { return m.natsErrors })
			log.Warn("nats asynchronous error", "conn", nc.Opts.Name, "err", err)
		}),
	}
}

// inc adds one to the counter of m that which picks, when m is not nil.
func (m *Metrics) inc(which func(*Metrics) prometheus.Counter) {
	if m != nil {
		which(m).Inc()
	}
}
