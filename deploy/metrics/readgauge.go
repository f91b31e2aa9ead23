package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadFunc reads a gauge's value from a server (NATS, ClickHouse); its
// error leaves the gauge out of that scrape.
type ReadFunc func(context.Context) (uint64, error)

// readTimeout bounds one ReadFunc, well inside a scrape's timeout.
const readTimeout = 3 * time.Second

// readGauge is a gauge read at each scrape. Unlike a GaugeFunc it can fail:
// a value that cannot be read is absent (alert on absent()), never a stale
// or made-up number.
type readGauge struct {
	desc *prometheus.Desc
	read ReadFunc
}

func newReadGauge(name, help string, labels prometheus.Labels, read ReadFunc) *readGauge {
	return &readGauge{desc: prometheus.NewDesc(name, help, nil, labels), read: read}
}

func (g *readGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *readGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	v, err := g.read(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(v))
}
