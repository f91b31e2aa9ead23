package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Projector records one projector's batches under its partition of the
// event stream. It satisfies projector.Metrics.
type Projector struct {
	events   prometheus.Counter
	rows     *prometheus.CounterVec
	duration prometheus.Observer
}

// Projector returns the recorder of the projector of partition ("0" while
// the stream has one); nil when m is nil.
func (m *Metrics) Projector(partition string) *Projector {
	if m == nil {
		return nil
	}
	return &Projector{
		events:   m.projectorEvents.WithLabelValues(partition),
		rows:     m.projectorRows.MustCurryWith(prometheus.Labels{"partition": partition}),
		duration: m.projectorDuration.WithLabelValues(partition),
	}
}

// Batch records a batch written, checkpointed and acknowledged: its events,
// the rows written per table and how long it took.
func (p *Projector) Batch(events int, rows map[string]int, took time.Duration) {
	if p == nil {
		return
	}
	p.events.Add(float64(events))
	for table, n := range rows {
		if n > 0 {
			p.rows.WithLabelValues(table).Add(float64(n))
		}
	}
	p.duration.Observe(took.Seconds())
}

// WatchLag exports trustpulse_projector_lag_events of partition, read from
// lag at every scrape (the stream's last sequence minus the checkpoint).
func (m *Metrics) WatchLag(partition string, lag ReadFunc) {
	if m == nil {
		return
	}
	m.reg.MustRegister(newReadGauge(Namespace+"_projector_lag_events",
		"Events of the stream the projection has yet to complete: the stream's last sequence minus the checkpoint in ClickHouse (read at each scrape; absent when it cannot be read).",
		prometheus.Labels{"partition": partition}, lag))
}
