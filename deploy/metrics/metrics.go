// Package metrics is what trustpulse measures, in Prometheus's terms: one
// Metrics per process holds every family on a registry of its own (with
// the Go and process collectors), and Handler serves it at /metrics on
// --metrics-addr, never on a public address.
//
// The services record through nil-safe methods (a nil *Metrics records
// nothing), so a part built without metrics, as in most tests, works
// unchanged. No label holds what a person gave or is: routes are Fiber's
// templates ("/s/:token", never the path), submissions are counted by
// error code, the guard by outcome; the only identifiers are fixed names
// (app, table, partition).
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace starts every trustpulse metric name.
const Namespace = "trustpulse"

// Metrics holds the process's metric families. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec

	submissionsAccepted prometheus.Counter
	submissionsRefused  *prometheus.CounterVec

	projectorEvents   *prometheus.CounterVec
	projectorRows     *prometheus.CounterVec
	projectorDuration *prometheus.HistogramVec
	projectorPhases   *prometheus.CounterVec
	projectorInserts  *prometheus.CounterVec

	guardDecisions *prometheus.CounterVec
	guardDuration  prometheus.Histogram

	mailSent     prometheus.Counter
	mailFailures *prometheus.CounterVec

	natsDisconnects prometheus.Counter
	natsReconnects  prometheus.Counter
	natsErrors      prometheus.Counter

	clickhouseErrors   *prometheus.CounterVec
	clickhouseRestarts prometheus.Counter
}

// New returns the metrics of a process of the given version, registered
// on a registry of their own with the Go and process collectors and
// trustpulse_build_info.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg: reg,
		httpDuration: f.histogramVec("http_request_duration_seconds",
			"Time to answer an HTTP request, by app (ingest, query, dashboard, admin, health), method, route template and status class (2xx, 3xx, 4xx, 5xx).",
			prometheus.DefBuckets, "app", "method", "route", "status_class"),
		submissionsAccepted: f.counter("submissions_accepted_total",
			"Survey responses accepted (recorded and held until their wave closes), through the API or the survey form."),
		submissionsRefused: f.counterVec("submissions_refused_total",
			"Survey responses refused, nothing recorded, by the problem code answered (token_used, token_unknown, invalid_answers, unavailable...).", "code"),
		projectorEvents: f.counterVec("projector_events_total",
			"Events the projector wrote to ClickHouse (duplicates of projected events left out), by partition of the event stream.", "partition"),
		projectorRows: f.counterVec("projector_rows_written_total",
			"Rows the projector inserted into ClickHouse, by partition and table.", "partition", "table"),
		projectorDuration: f.histogramVec("projector_batch_duration_seconds",
			"Time to write one batch of events to ClickHouse, checkpoint and acknowledge it, by partition.",
			[]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}, "partition"),
		projectorPhases: f.counterVec("projector_phase_seconds_total",
			"Seconds the projector spent in each phase of its batches, by partition and phase: fetch (its wait for messages included), decode (the envelopes), lookup (event ids in projected_events) and build (rows, payloads decoded; beside the look-up, so the two overlap) prepare a batch while the one ahead is written; wait is the writer waiting for the next batch to be ready (on a quiet stream mostly the fetch's wait for messages); insert, checkpoint and ack write it.", "partition", "phase"),
		projectorInserts: f.counterVec("projector_insert_seconds_total",
			"Seconds the projector spent inserting into each table, by partition and table. A batch's tables are written in parallel, so these overlap; the insert phase is their wall time.", "partition", "table"),
		guardDecisions: f.counterVec("guard_decisions_total",
			"Sets of respondents the anonymity guard decided on, by outcome: served, suppressed (withheld to keep respondents apart) or refused (the guard's record was busy or unreachable, nothing served).", "outcome"),
		guardDuration: f.histogram("guard_decision_duration_seconds",
			"Time of one decision of the anonymity guard against its shared record (read, decide, compare-and-set).", prometheus.DefBuckets),
		mailSent: f.counter("mail_sent_total", "Emails the postman handed to the mail relay."),
		mailFailures: f.counterVec("mail_send_failures_total",
			"Emails the mail relay did not take, by kind: temporary (retried later) or permanent (recorded for admins).", "kind"),
		natsDisconnects: f.counter("nats_disconnects_total", "Times a NATS connection of the process was lost."),
		natsReconnects:  f.counter("nats_reconnects_total", "Times a NATS connection of the process was re-established."),
		natsErrors:      f.counter("nats_async_errors_total", "Asynchronous errors NATS reported (slow consumer, permission violation...)."),
		clickhouseErrors: f.counterVec("clickhouse_errors_total",
			"ClickHouse calls that failed, by operation: query, exec, insert or ping.", "op"),
		clickhouseRestarts: f.counter("clickhouse_restarts_total",
			"Times the local ClickHouse server exited and was started again by trustpulse's supervision."),
	}
	for _, o := range []string{"served", "suppressed", "refused"} {
		m.guardDecisions.WithLabelValues(o)
	}
	for _, k := range []string{"temporary", "permanent"} {
		m.mailFailures.WithLabelValues(k)
	}
	for _, op := range []string{"query", "exec", "insert", "ping"} {
		m.clickhouseErrors.WithLabelValues(op)
	}
	build := f.gaugeVec("build_info", "Always 1: the version of trustpulse and of Go it was built with.", "version", "goversion")
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text or protobuf format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// Registry is where the families are registered, for a part's own collector.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// factory builds families under the trustpulse namespace on one registry.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
