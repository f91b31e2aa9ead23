package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// Config is every setting of trustpulse, parsed once from flags and
// TRUSTPULSE_* environment variables (flags win), defaulted and validated.
type Config struct {
	Target string

	DataDir      string
	NATSURL      string
	NATSListen   string
	NATSReplicas int
	NATSSync     string
	// MaxInFlight bounds the submissions one ingest process records at once.
	MaxInFlight int
	// MaxConnections bounds the connections one ingest process holds open.
	MaxConnections int
	// FailureRate and FailureBurst limit each client's failed requests:
	// forged survey links (404) and wrong tokens (401).
	FailureRate  float64
	FailureBurst int
	// TrustedProxyHeader names the header a trusted proxy sets to the
	// client's address; empty uses the peer address.
	TrustedProxyHeader string

	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	// ClickHouseCluster names the ClickHouse cluster (remote_servers) the
	// migrations create the tables on, replicated and sharded by
	// organisation; empty: one server (schemas.Cluster).
	ClickHouseCluster string
	// ClickHouseInsertQuorum is the replicas each projector insert must
	// reach before it counts as written (insert_quorum), in cluster mode.
	ClickHouseInsertQuorum int
	// ClickHouseQuorumTimeout is how long an insert waits for its quorum
	// (insert_quorum_timeout).
	ClickHouseQuorumTimeout time.Duration

	IngestAddr string
	QueryAddr  string
	AdminAddr  string
	// HealthAddr is where the projector target answers /livez and /readyz
	// (the other targets answer them on their APIs).
	HealthAddr string
	// MetricsAddr is where /metrics answers Prometheus; "" or "off" turns
	// it off (metricsOn).
	MetricsAddr string
	// Pprof serves Go's CPU and heap profiles (net/http/pprof) under
	// /debug/pprof/ on the metrics address, for operators and the
	// benchmarks; off by default.
	Pprof bool
	// ReadyMaxLag is the most events the projection may lag behind the
	// event stream while /readyz of a process running the projector says
	// ready.
	ReadyMaxLag int
	AdminToken  string
	// SessionKey signs dashboard sessions (hex, at least 32 bytes); empty
	// draws one at start, so sessions end with the process.
	SessionKey string
	// SealKeyFile holds the master key that encrypts held responses; it
	// must not live with the stores.
	SealKeyFile string
	PublicURL   string
	// DashboardURL is the public base of the query API and dashboards, in
	// links that employees and managers are sent or shown.
	DashboardURL string

	SMTPHost     string
	SMTPPort     int
	SMTPTLS      string
	SMTPUsername string
	SMTPPassword string
	MailFrom     string
	MailFromName string
	MailRate     float64

	Threshold int
	SealGrace time.Duration
	BatchSize int
	BatchWait time.Duration
	// ProjectorPartitions is the event stream's partition count; every
	// target must be given the stream's (ProjectorPartitionIDs parsed into
	// PartitionIDs by Validate: the partitions this process projects).
	ProjectorPartitions   int
	ProjectorPartitionIDs string
	PartitionIDs          []int
	ShutdownTimeout       time.Duration
	LogLevel              string
}

// envPrefix begins the name of every environment variable of a setting.
const envPrefix = "TRUSTPULSE_"

// env returns TRUSTPULSE_<name>, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(envPrefix + name); ok {
		return v
	}
	return def
}

// envName is the environment variable that sets the flag named flagName:
// TRUSTPULSE_ and the name in upper case, - as _ (--data-dir:
// TRUSTPULSE_DATA_DIR). register's calls of env follow it, and
// TestEnvNames checks that every flag does.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(env(name, "")); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(env(name, ""), 64); err == nil {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(env(name, "")); err == nil {
		return v
	}
	return def
}

// register adds the settings to fs, each defaulting to its environment
// variable, then to the built-in default.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Target, "target", env("TARGET", "all"), "what to run: all, ingest, projector or query (env TRUSTPULSE_TARGET)")
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", "./data"), "data directory of the embedded NATS and local ClickHouse (env TRUSTPULSE_DATA_DIR)")
	fs.StringVar(&c.NATSURL, "nats-url", env("NATS_URL", ""), "external NATS server or cluster, e.g. nats://a:4222,nats://b:4222; empty runs an embedded server (env TRUSTPULSE_NATS_URL)")
	fs.StringVar(&c.NATSListen, "nats-listen", env("NATS_LISTEN", "127.0.0.1:4222"), "client address of the embedded NATS server (env TRUSTPULSE_NATS_LISTEN)")
	fs.Float64Var(&c.FailureRate, "failure-rate", envFloat("FAILURE_RATE", 0.5), "failed requests per second each client may make in the long run — survey links that do not exist (404), wrong tokens of the query and admin APIs and the dashboards' sign-in (401) — beyond which it gets 429 with Retry-After (env TRUSTPULSE_FAILURE_RATE)")
	fs.IntVar(&c.FailureBurst, "failure-burst", envInt("FAILURE_BURST", 30), "failed requests a client may make at once before --failure-rate applies (env TRUSTPULSE_FAILURE_BURST)")
	fs.StringVar(&c.TrustedProxyHeader, "trusted-proxy-header", env("TRUSTED_PROXY_HEADER", ""), "header in which a trusted reverse proxy passes the client's address (e.g. X-Forwarded-For), for the limits; empty: the peer address. Set it only behind such a proxy: clients can forge it (env TRUSTPULSE_TRUSTED_PROXY_HEADER)")
	fs.IntVar(&c.MaxConnections, "max-connections", envInt("MAX_CONNECTIONS", ingest.DefaultMaxConnections), "connections one ingest process holds open at once; beyond it a connection gets a fast 503 and is closed (env TRUSTPULSE_MAX_CONNECTIONS)")
	fs.IntVar(&c.MaxInFlight, "max-inflight", envInt("MAX_INFLIGHT", ingest.DefaultMaxInFlight), "submissions one ingest process records at once; beyond it a submission gets a fast 503 with Retry-After, nothing recorded (env TRUSTPULSE_MAX_INFLIGHT)")
	fs.StringVar(&c.NATSSync, "nats-sync", env("NATS_SYNC", "always"), "the embedded NATS server's fsync: always (before every acknowledgement: an acknowledged response survives a power cut) or interval (every 2 minutes, faster) (env TRUSTPULSE_NATS_SYNC)")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", envInt("NATS_REPLICAS", 1), "replicas of streams, buckets and consumers: 1, or 3/5 on a JetStream cluster (env TRUSTPULSE_NATS_REPLICAS)")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", env("CLICKHOUSE_ADDR", ""), "external ClickHouse native address host:port, or several comma-separated (tried in order: the first that answers is used); empty runs a local server (env TRUSTPULSE_CLICKHOUSE_ADDR)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", env("CLICKHOUSE_CLUSTER", ""), "ClickHouse cluster (a name in remote_servers, with ZooKeeper and {shard}/{replica} macros on every node) on which the migrations create the tables ON CLUSTER as Replicated*MergeTree with Distributed tables over them, sharded by organisation; empty: one server. List several nodes in --clickhouse-addr to fail over (env TRUSTPULSE_CLICKHOUSE_CLUSTER)")
	fs.IntVar(&c.ClickHouseInsertQuorum, "clickhouse-insert-quorum", envInt("CLICKHOUSE_INSERT_QUORUM", 2), "with --clickhouse-cluster: replicas of a shard each projector insert must reach (insert_quorum) before it counts; the projector reads with select_sequential_consistency. With 2 replicas per shard and quorum 2 the projector pauses while a replica is down, and resumes when it is back. 1 turns the quorum off and with it the guarantee that a read after a failover sees every write (env TRUSTPULSE_CLICKHOUSE_INSERT_QUORUM)")
	fs.DurationVar(&c.ClickHouseQuorumTimeout, "clickhouse-quorum-timeout", envDur("CLICKHOUSE_QUORUM_TIMEOUT", 15*time.Second), "with --clickhouse-cluster: how long a projector insert waits for its quorum (insert_quorum_timeout) before the projector gives up on the batch and waits, from the start, until the quorum is reached (env TRUSTPULSE_CLICKHOUSE_QUORUM_TIMEOUT)")
	fs.StringVar(&c.ClickHouseDatabase, "clickhouse-database", env("CLICKHOUSE_DATABASE", "trustpulse"), "ClickHouse database (env TRUSTPULSE_CLICKHOUSE_DATABASE)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", env("CLICKHOUSE_USER", "default"), "ClickHouse user (env TRUSTPULSE_CLICKHOUSE_USER)")
	fs.StringVar(&c.ClickHousePassword, "clickhouse-password", env("CLICKHOUSE_PASSWORD", ""), "ClickHouse password (env TRUSTPULSE_CLICKHOUSE_PASSWORD)")
	fs.StringVar(&c.IngestAddr, "ingest-addr", env("INGEST_ADDR", "127.0.0.1:8080"), "listen address of the ingest API (env TRUSTPULSE_INGEST_ADDR)")
	fs.StringVar(&c.QueryAddr, "query-addr", env("QUERY_ADDR", "127.0.0.1:8081"), "listen address of the query API (env TRUSTPULSE_QUERY_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("ADMIN_ADDR", "127.0.0.1:8082"), "listen address of the admin API (env TRUSTPULSE_ADMIN_ADDR)")
	fs.StringVar(&c.HealthAddr, "health-addr", env("HEALTH_ADDR", "127.0.0.1:8083"), "listen address of /livez and /readyz of --target=projector (the other targets answer them on their APIs); in Kubernetes use :8083 so that the kubelet reaches it (env TRUSTPULSE_HEALTH_ADDR)")
	fs.BoolVar(&c.Pprof, "pprof", env("PPROF", "") == "true", "also serve Go's runtime profiles (net/http/pprof: CPU, heap, goroutines) under /debug/pprof/ on --metrics-addr, which must be on; off by default; they show code paths and timings, never request contents, but keep the metrics address operator-only (env TRUSTPULSE_PPROF=true)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("METRICS_ADDR", "127.0.0.1:9464"), "listen address of Prometheus metrics at /metrics, apart from the public APIs; off (or empty) turns them off; in Kubernetes use :9464 so that Prometheus reaches it (env TRUSTPULSE_METRICS_ADDR)")
	fs.IntVar(&c.ReadyMaxLag, "ready-max-lag", envInt("READY_MAX_LAG", 10000), "most events the projector may lag behind the event stream while /readyz of a process running it (the projector's, and the query API's with --target=all) answers ready; beyond it 503 projector_lagging. Readiness only: /livez stays 200, so a projector catching up after a restart is not killed (env TRUSTPULSE_READY_MAX_LAG)")
	fs.StringVar(&c.SealKeyFile, "seal-key-file", env("SEAL_KEY_FILE", defaultSealKeyFile()), "file of the key that encrypts responses held while a wave is open (64 hex digits; created with mode 0600 if missing). Keep it off the NATS and ClickHouse hosts' backups: with the stores alone, held answers cannot be read (env TRUSTPULSE_SEAL_KEY_FILE)")
	fs.StringVar(&c.SessionKey, "session-key", env("SESSION_KEY", ""), "hex key of at least 32 bytes that signs dashboard sessions, the same on every query replica; empty draws one per process (env TRUSTPULSE_SESSION_KEY)")
	fs.StringVar(&c.AdminToken, "admin-token", env("ADMIN_TOKEN", ""), "bearer token of the admin API, at least 32 characters; empty turns the admin API off (env TRUSTPULSE_ADMIN_TOKEN)")
	fs.StringVar(&c.PublicURL, "public-url", env("PUBLIC_URL", ""), "public base URL of the ingest API, used in survey links; default http://<ingest-addr> (env TRUSTPULSE_PUBLIC_URL)")
	fs.StringVar(&c.DashboardURL, "dashboard-url", env("DASHBOARD_URL", ""), "public base URL of the query API and dashboards, used in managers' sign-in links and employees' reply and team-plan links; default http://<query-addr> (env TRUSTPULSE_DASHBOARD_URL)")
	fs.StringVar(&c.SMTPHost, "smtp-host", env("SMTP_HOST", ""), "SMTP relay host; empty runs the development mail sink, which stores emails under DATA/mail (env TRUSTPULSE_SMTP_HOST)")
	fs.IntVar(&c.SMTPPort, "smtp-port", envInt("SMTP_PORT", 587), "SMTP relay port (env TRUSTPULSE_SMTP_PORT)")
	fs.StringVar(&c.SMTPTLS, "smtp-tls", env("SMTP_TLS", "starttls"), "starttls, tls (implicit) or none (env TRUSTPULSE_SMTP_TLS)")
	fs.StringVar(&c.SMTPUsername, "smtp-username", env("SMTP_USERNAME", ""), "SMTP user; empty sends without authentication (env TRUSTPULSE_SMTP_USERNAME)")
	fs.StringVar(&c.SMTPPassword, "smtp-password", env("SMTP_PASSWORD", ""), "SMTP password (env TRUSTPULSE_SMTP_PASSWORD)")
	fs.StringVar(&c.MailFrom, "mail-from", env("MAIL_FROM", "pulse@localhost"), "sender address of survey emails (env TRUSTPULSE_MAIL_FROM)")
	fs.StringVar(&c.MailFromName, "mail-from-name", env("MAIL_FROM_NAME", "trustpulse"), "sender name of survey emails (env TRUSTPULSE_MAIL_FROM_NAME)")
	fs.Float64Var(&c.MailRate, "mail-rate", envFloat("MAIL_RATE", 10), "most emails sent per second (env TRUSTPULSE_MAIL_RATE)")
	fs.IntVar(&c.Threshold, "threshold", envInt("THRESHOLD", 5), "minimum distinct respondents behind any served number, 3-10 (env TRUSTPULSE_THRESHOLD)")
	fs.DurationVar(&c.SealGrace, "seal-grace", envDur("SEAL_GRACE", 10*time.Second), "wait after a wave closes before its held responses are published shuffled (env TRUSTPULSE_SEAL_GRACE)")
	fs.IntVar(&c.BatchSize, "batch-size", envInt("BATCH_SIZE", 5000), "projector batch size in events (env TRUSTPULSE_BATCH_SIZE)")
	fs.DurationVar(&c.BatchWait, "batch-wait", envDur("BATCH_WAIT", 250*time.Millisecond), "longest wait for a projector batch to fill (env TRUSTPULSE_BATCH_WAIT)")
	fs.IntVar(&c.ProjectorPartitions, "projector-partitions", envInt("PROJECTOR_PARTITIONS", 1), "partitions of the event stream by organisation, each projected by its own worker (one per process or several in one); fixed when the stream is created, so every target must be given the same; change it with 'trustpulse replay --projector-partitions N' (env TRUSTPULSE_PROJECTOR_PARTITIONS)")
	fs.StringVar(&c.ProjectorPartitionIDs, "projector-partition-ids", env("PROJECTOR_PARTITION_IDS", ""), "comma-separated partitions this process projects, e.g. 0,2; empty projects every partition, each worker standing by while another process holds it (env TRUSTPULSE_PROJECTOR_PARTITION_IDS)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDur("SHUTDOWN_TIMEOUT", 15*time.Second), "grace period for in-flight requests on shutdown (env TRUSTPULSE_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env TRUSTPULSE_LOG_LEVEL)")
}

// Validate checks every setting and names each bad one.
func (c *Config) Validate() error {
	var errs []error
	switch c.Target {
	case "all", "ingest", "projector", "query":
	default:
		errs = append(errs, fmt.Errorf("--target %q: want all, ingest, projector or query", c.Target))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if c.NATSURL == "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("--nats-listen %q: want host:port", c.NATSListen))
		}
	} else {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" {
				errs = append(errs, fmt.Errorf("--nats-url %q: want nats://host:port[,nats://host:port...]", c.NATSURL))
				break
			}
		}
	}
	if c.FailureRate <= 0 || c.FailureBurst < 1 {
		errs = append(errs, fmt.Errorf("--failure-rate %v, --failure-burst %d: want both above 0", c.FailureRate, c.FailureBurst))
	}
	if c.ProjectorPartitions < 1 || c.ProjectorPartitions > schemas.MaxPartitions {
		errs = append(errs, fmt.Errorf("--projector-partitions %d: want 1 to %d", c.ProjectorPartitions, schemas.MaxPartitions))
	} else if ids, err := parsePartitionIDs(c.ProjectorPartitionIDs, c.ProjectorPartitions); err != nil {
		errs = append(errs, err)
	} else {
		c.PartitionIDs = ids
	}
	if c.ReadyMaxLag < 1 {
		errs = append(errs, fmt.Errorf("--ready-max-lag %d: want at least 1", c.ReadyMaxLag))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("--max-connections %d: want at least 1", c.MaxConnections))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("--max-inflight %d: want at least 1", c.MaxInFlight))
	}
	if c.NATSSync != "always" && c.NATSSync != "interval" {
		errs = append(errs, fmt.Errorf("--nats-sync %q: want always or interval", c.NATSSync))
	}
	if c.NATSReplicas != 1 && c.NATSReplicas != 3 && c.NATSReplicas != 5 {
		errs = append(errs, fmt.Errorf("--nats-replicas %d: want 1, 3 or 5", c.NATSReplicas))
	}
	if c.ClickHouseAddr != "" {
		for _, a := range strings.Split(c.ClickHouseAddr, ",") {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
				errs = append(errs, fmt.Errorf("--clickhouse-addr %q: want host:port[,host:port...] of the native protocol (usually port 9000)", c.ClickHouseAddr))
				break
			}
		}
	}
	if c.ClickHouseCluster != "" {
		if c.ClickHouseAddr == "" {
			errs = append(errs, fmt.Errorf("--clickhouse-cluster %q: needs --clickhouse-addr (the local server is one node)", c.ClickHouseCluster))
		}
		if !validIdent(c.ClickHouseCluster) {
			errs = append(errs, fmt.Errorf("--clickhouse-cluster %q: want a name of letters, digits and _", c.ClickHouseCluster))
		}
		if c.ClickHouseInsertQuorum < 1 {
			errs = append(errs, fmt.Errorf("--clickhouse-insert-quorum %d: want at least 1", c.ClickHouseInsertQuorum))
		}
		if c.ClickHouseQuorumTimeout < time.Second || c.ClickHouseQuorumTimeout > batchTimeoutLimit {
			errs = append(errs, fmt.Errorf("--clickhouse-quorum-timeout %s: want 1s to %s", c.ClickHouseQuorumTimeout, batchTimeoutLimit))
		}
	}
	if c.ClickHouseDatabase == "" {
		errs = append(errs, errors.New("--clickhouse-database: required"))
	}
	if c.runs("ingest") {
		switch abs, dataAbs := absPath(c.SealKeyFile), absPath(c.DataDir); {
		case c.SealKeyFile == "":
			errs = append(errs, errors.New("--seal-key-file: required (the key that encrypts held responses)"))
		case dataAbs != "" && strings.HasPrefix(abs+string(filepath.Separator), dataAbs+string(filepath.Separator)):
			errs = append(errs, fmt.Errorf("--seal-key-file %s: must not be inside --data-dir (%s), where the stores are", c.SealKeyFile, c.DataDir))
		}
	}
	if k, err := hex.DecodeString(c.SessionKey); c.SessionKey != "" && (err != nil || len(k) < 32) {
		errs = append(errs, errors.New("--session-key: want at least 64 hex digits (32 bytes)"))
	}
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		errs = append(errs, errors.New("--admin-token: at least 32 characters (e.g. openssl rand -hex 32)"))
	}
	for _, a := range []struct{ flag, v string }{{"--ingest-addr", c.IngestAddr}, {"--query-addr", c.QueryAddr}, {"--admin-addr", c.AdminAddr}, {"--health-addr", c.HealthAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", a.flag, a.v))
		}
	}
	if c.metricsOn() {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr %q: want host:port, or off", c.MetricsAddr))
		}
	}
	if c.Pprof && !c.metricsOn() {
		errs = append(errs, errors.New("--pprof: the profiles are served on --metrics-addr, which is off"))
	}
	if c.DashboardURL != "" {
		if u, err := url.Parse(c.DashboardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--dashboard-url %q: want http(s)://host[:port][/path]", c.DashboardURL))
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--public-url %q: want http(s)://host[:port][/path]", c.PublicURL))
		}
	}
	switch c.SMTPTLS {
	case "starttls", "tls", "none":
	default:
		errs = append(errs, fmt.Errorf("--smtp-tls %q: want starttls, tls or none", c.SMTPTLS))
	}
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		errs = append(errs, fmt.Errorf("--smtp-port %d: want 1-65535", c.SMTPPort))
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		errs = append(errs, fmt.Errorf("--mail-from %q: want an email address", c.MailFrom))
	}
	if c.MailRate <= 0 || c.MailRate > 10000 {
		errs = append(errs, fmt.Errorf("--mail-rate %g: want more than 0 and at most 10000", c.MailRate))
	}
	if c.Threshold < 3 || c.Threshold > 10 {
		errs = append(errs, fmt.Errorf("--threshold %d: want 3 to 10", c.Threshold))
	}
	if c.SealGrace < 0 || c.SealGrace > 10*time.Minute {
		errs = append(errs, fmt.Errorf("--seal-grace %s: want 0 to 10m", c.SealGrace))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want 1 to 100000", c.BatchSize))
	}
	if c.BatchWait <= 0 || c.BatchWait > time.Minute {
		errs = append(errs, fmt.Errorf("--batch-wait %s: want more than 0 and at most 1m", c.BatchWait))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// publicURL is the base of survey links.
func (c *Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	return "http://" + c.IngestAddr
}

// dashboardURL is the base of links to the query API's pages.
func (c *Config) dashboardURL() string {
	if c.DashboardURL != "" {
		return strings.TrimSuffix(c.DashboardURL, "/")
	}
	return "http://" + c.QueryAddr
}

// batchTimeoutLimit keeps a quorum wait inside the projector's batch
// deadline (2m).
const batchTimeoutLimit = time.Minute

// validIdent reports whether s is a plain ClickHouse identifier, safe to
// write unquoted into DDL.
func validIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// metricsOn reports whether /metrics is served.
func (c *Config) metricsOn() bool { return c.MetricsAddr != "" && c.MetricsAddr != "off" }

func (c *Config) runs(part string) bool { return c.Target == "all" || c.Target == part }

// defaultSealKeyFile is the seal key's place when none is given: the
// user's configuration directory, away from the data directory.
func defaultSealKeyFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "trustpulse", "seal.key")
}

// absPath is path made absolute, or "" when it cannot be.
func absPath(path string) string {
	if path == "" {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	return filepath.Clean(abs)
}

// parsePartitionIDs parses --projector-partition-ids: distinct partitions
// below n, comma-separated; empty is every partition (nil).
func parsePartitionIDs(s string, n int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || id < 0 || id >= n || seen[id] {
			return nil, fmt.Errorf("--projector-partition-ids %q: want distinct partitions from 0 to %d (--projector-partitions %d), comma-separated", s, n-1, n)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// projectorConfig is the projector's view of the config.
func (c *Config) projectorConfig() projector.Config {
	pc := projector.Config{BatchSize: c.BatchSize, BatchWait: c.BatchWait, Replicas: c.NATSReplicas,
		Partitions: c.ProjectorPartitions, PartitionIDs: c.PartitionIDs}
	if c.ClickHouseCluster != "" {
		pc.Cluster = projector.NewCluster(schemas.Cluster{Name: c.ClickHouseCluster, Database: c.ClickHouseDatabase},
			c.ClickHouseInsertQuorum, c.ClickHouseQuorumTimeout)
	}
	return pc
}
