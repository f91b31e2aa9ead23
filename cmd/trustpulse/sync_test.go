package main

import (
	"context"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
)

// TestNATSSync: the embedded JetStream server syncs every write before it
// acknowledges it unless told otherwise (issue 12, item 4: with NATS's
// default two-minute interval, a power cut loses acknowledged writes, as
// Jepsen found for NATS 2.12.1), and --nats-sync interval turns it off.
func TestNATSSync(t *testing.T) {
	for _, tc := range []struct {
		sync string
		want bool
	}{{"always", true}, {"interval", false}} {
		cfg := testConfig(t)
		cfg.NATSSync = tc.sync
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		m, err := Open(context.Background(), cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		got := m.Stack.EmbeddedNATS().JetStreamConfig().SyncAlways
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("--nats-sync %s: the server's sync_always is %v, want %v", tc.sync, got, tc.want)
		}
	}
	cfg := testConfig(t)
	cfg.NATSSync = "sometimes"
	if err := cfg.Validate(); err == nil {
		t.Error("--nats-sync sometimes accepted")
	}
}
