package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustpulse/trustpulse/projector"
)

// Projector records the projector's batches under their partition of the
// event stream. It satisfies projector.Metrics.
type Projector struct {
	events   *prometheus.CounterVec
	rows     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	phases   *prometheus.CounterVec
	inserts  *prometheus.CounterVec
}

// Projector returns the recorder of the projector's batches; nil when m is
// nil.
func (m *Metrics) Projector() *Projector {
	if m == nil {
		return nil
	}
	return &Projector{events: m.projectorEvents, rows: m.projectorRows, duration: m.projectorDuration, phases: m.projectorPhases, inserts: m.projectorInserts}
}

// partitionLabel is the partition label of partition p; a replay's single
// pass over the whole stream (p < 0) is "replay".
func partitionLabel(p int) string {
	if p < 0 {
		return "replay"
	}
	return strconv.Itoa(p)
}

// Batch records a batch of partition written, checkpointed and
// acknowledged: its events, the rows written per table, how long it took
// and where that time went.
func (p *Projector) Batch(partition, events int, rows map[string]int, took time.Duration, ph projector.Phases) {
	if p == nil {
		return
	}
	label := partitionLabel(partition)
	p.events.WithLabelValues(label).Add(float64(events))
	for table, n := range rows {
		if n > 0 {
			p.rows.WithLabelValues(label, table).Add(float64(n))
		}
	}
	p.duration.WithLabelValues(label).Observe(took.Seconds())
	for table, d := range ph.Tables {
		p.inserts.WithLabelValues(label, table).Add(d.Seconds())
	}
	for phase, d := range map[string]time.Duration{"fetch": ph.Fetch, "decode": ph.Decode, "lookup": ph.Lookup, "build": ph.Build,
		"wait": ph.Wait, "insert": ph.Insert, "checkpoint": ph.Checkpoint, "ack": ph.Ack} {
		p.phases.WithLabelValues(label, phase).Add(d.Seconds())
	}
}

// LagsFunc reads the projection's lag of every partition of the event
// stream.
type LagsFunc func(context.Context) (map[int]uint64, error)

// WatchLag exports trustpulse_projector_lag_events of every partition, read
// from lags at every scrape (a partition's last sequence in the stream minus
// its checkpoint). A scrape that cannot read them leaves the family out.
func (m *Metrics) WatchLag(lags LagsFunc) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&lagGauge{
		desc: prometheus.NewDesc(Namespace+"_projector_lag_events",
			"Events of the stream the projection has yet to complete, per partition: the partition's last sequence in the stream minus its checkpoint in ClickHouse (read at each scrape; absent when it cannot be read).",
			[]string{"partition"}, nil),
		read: lags,
	})
}

// lagGauge is the projector's lag per partition, read at each scrape.
type lagGauge struct {
	desc *prometheus.Desc
	read LagsFunc
}

func (g *lagGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *lagGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	lags, err := g.read(ctx)
	if err != nil {
		return
	}
	for p, v := range lags {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(v), partitionLabel(p))
	}
}
