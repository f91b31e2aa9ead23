package main

import (
	"net/http"
	httppprof "net/http/pprof"
	"runtime/debug"
	"time"

	"github.com/trustpulse/trustpulse/deploy/metrics"
)

// version is trustpulse's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; empty takes it from the build info.
var version = ""

// buildVersion is version, else the module's version, else the VCS
// revision the binary was built from, else "devel".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

// metricsServer answers GET /metrics on --metrics-addr, and with pprof
// (--pprof) Go's runtime profiles under /debug/pprof/; nothing else.
func metricsServer(m *metrics.Metrics, pprof bool) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if pprof {
		mux.HandleFunc("GET /debug/pprof/", httppprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", httppprof.Trace)
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
}
