package deploy_test

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// TestComposeNATSSyncsAlways: the compose file's JetStream cluster config,
// read by the NATS server's own parser, syncs every write before acking.
func TestComposeNATSSyncsAlways(t *testing.T) {
	opts, err := server.ProcessConfigFile("compose/nats-cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !opts.SyncAlways {
		t.Fatalf("compose/nats-cluster.conf: sync_always %v, sync_interval %v; want sync_interval: always", opts.SyncAlways, opts.SyncInterval)
	}
}

// TestComposeShape: the compose file runs the parts as the Helm chart does
// (every flag and variable it sets is checked against the binary by
// cmd/trustpulse's TestDeployFlags): metrics off the public address on every
// part, one projector per partition with its health address reachable, and
// the seal key as a file outside the data directory.
func TestComposeShape(t *testing.T) {
	services, err := testenv.ComposeServices("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string][]string{}
	for name, s := range services {
		if !s.Trustpulse() {
			continue
		}
		target := composeTarget(t, name, s)
		targets[target] = append(targets[target], name)
		env := s.Environment
		if _, port, err := net.SplitHostPort(env["TRUSTPULSE_METRICS_ADDR"]); err != nil || port == "" {
			t.Errorf("%s: TRUSTPULSE_METRICS_ADDR %q; want host:port", name, env["TRUSTPULSE_METRICS_ADDR"])
		}
		for _, p := range s.Ports {
			if strings.HasSuffix(p, ":"+metricsPort(env)) {
				t.Errorf("%s publishes the metrics port (%s)", name, p)
			}
		}
		// A read-only container writes only to its tmpfs and volumes: the
		// data directory must be one (the image's working directory is
		// not writable; red team, 2026-12-02).
		if dir := env["TRUSTPULSE_DATA_DIR"]; s.ReadOnly && !slices.Contains(s.Tmpfs, dir) && !slices.ContainsFunc(s.Volumes, func(v string) bool {
			parts := strings.Split(v, ":")
			return len(parts) > 1 && parts[1] == dir
		}) {
			t.Errorf("%s: read-only, TRUSTPULSE_DATA_DIR %q is neither a tmpfs (%v) nor a volume", name, dir, s.Tmpfs)
		}
		if target != "ingest" && env["TRUSTPULSE_CLICKHOUSE_PASSWORD"] == "" {
			t.Errorf("%s: no TRUSTPULSE_CLICKHOUSE_PASSWORD: current ClickHouse images refuse the passwordless default user over the network", name)
		}
		if target == "projector" {
			if host, _, err := net.SplitHostPort(env["TRUSTPULSE_HEALTH_ADDR"]); err != nil || host == "127.0.0.1" || host == "localhost" {
				t.Errorf("%s: TRUSTPULSE_HEALTH_ADDR %q; want an address other containers reach", name, env["TRUSTPULSE_HEALTH_ADDR"])
			}
		}
		if target == "ingest" {
			key := env["TRUSTPULSE_SEAL_KEY_FILE"]
			if !strings.HasPrefix(key, "/run/secrets/") {
				t.Errorf("%s: TRUSTPULSE_SEAL_KEY_FILE %q; want a compose secret under /run/secrets", name, key)
			}
		}
	}
	for _, target := range []string{"ingest", "projector", "query"} {
		if len(targets[target]) == 0 {
			t.Errorf("no service runs --target=%s", target)
		}
	}
	checkPartitions(t, services, targets["projector"])
}

// checkPartitions: the projector services own partitions 0..N-1, each once,
// and every part is told the same N.
func checkPartitions(t *testing.T, services map[string]testenv.ComposeService, projectors []string) {
	t.Helper()
	n, err := strconv.Atoi(services[projectors[0]].Environment["TRUSTPULSE_PROJECTOR_PARTITIONS"])
	if err != nil || n < 1 {
		t.Fatalf("%s: TRUSTPULSE_PROJECTOR_PARTITIONS %q", projectors[0], services[projectors[0]].Environment["TRUSTPULSE_PROJECTOR_PARTITIONS"])
	}
	owner := map[string]string{}
	for name, s := range services {
		if !s.Trustpulse() {
			continue
		}
		if got := s.Environment["TRUSTPULSE_PROJECTOR_PARTITIONS"]; got != strconv.Itoa(n) {
			t.Errorf("%s: TRUSTPULSE_PROJECTOR_PARTITIONS %q; want %d like %s", name, got, n, projectors[0])
		}
	}
	for _, name := range projectors {
		for _, id := range strings.Split(services[name].Environment["TRUSTPULSE_PROJECTOR_PARTITION_IDS"], ",") {
			if prev, ok := owner[id]; ok {
				t.Errorf("partition %s: projected by %s and %s", id, prev, name)
			}
			owner[id] = name
		}
	}
	for i := range n {
		if owner[strconv.Itoa(i)] == "" {
			t.Errorf("partition %d of %d: no projector service", i, n)
		}
	}
	if len(owner) != n {
		t.Errorf("projectors own partitions %v; want 0..%d", owner, n-1)
	}
}

// composeTarget is the --target of a trustpulse service's command.
func composeTarget(t *testing.T, name string, s testenv.ComposeService) string {
	t.Helper()
	for _, a := range s.Command {
		if v, ok := strings.CutPrefix(a, "--target="); ok {
			return v
		}
	}
	t.Fatalf("%s: command %q has no --target=", name, s.Command)
	return ""
}

func metricsPort(env map[string]string) string {
	_, port, _ := net.SplitHostPort(env["TRUSTPULSE_METRICS_ADDR"])
	return port
}
