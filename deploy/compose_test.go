package deploy_test

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
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
