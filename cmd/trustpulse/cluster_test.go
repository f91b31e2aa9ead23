package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/natsrv"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// startCluster starts a three-node JetStream cluster on loopback ports and
// returns its servers and client URL list.
func startCluster(t *testing.T) ([]*natsrv.Server, string) {
	t.Helper()
	ports := make([]int, 6)
	for i := range ports {
		p, err := localch.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	var routes, urls []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	servers := make([]*natsrv.Server, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			srv, err := natsrv.Start(natsrv.Options{
				StoreDir:   filepath.Join(t.TempDir(), fmt.Sprint(i)),
				Listen:     fmt.Sprintf("127.0.0.1:%d", ports[i]),
				ServerName: fmt.Sprintf("n%d", i+1),
				Cluster:    &natsrv.Cluster{Name: "trustpulse-test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), Routes: routes},
			})
			servers[i] = srv
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range servers {
		t.Cleanup(s.Stop)
	}
	// Wait for the JetStream meta group to elect a leader.
	nc, err := deploy.ConnectNATS(strings.Join(urls, ","), "cluster-wait")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		// A leader alone is not enough: streams of three replicas need
		// every peer online, with stats the leader has received (seen
		// once on a loaded machine: "no suitable peers for placement").
		online := 0
		for _, s := range servers {
			online = max(online, len(s.JetStreamClusterPeers()))
		}
		if err == nil && online == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready (%d peers online): %v", online, err)
		}
	}
	return servers, strings.Join(urls, ",")
}

// TestThreeNodeCluster runs trustpulse against a three-node JetStream
// cluster with three replicas, stops one node half-way, and checks that the
// served aggregates still equal the truth.
func TestThreeNodeCluster(t *testing.T) {
	servers, urls := startCluster(t)
	cfg := testConfig(t)
	cfg.NATSURL, cfg.NATSReplicas = urls, 3
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	authorize(t, m, schemas.RoleAnalyst)

	info, err := m.Stack.JS.Stream(context.Background(), schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("event stream has %d replicas, want 3", r)
	}
	// Stop one node; R3 keeps quorum. Wait until the stream, its consumer
	// and the buckets have leaders among the two left (a failover takes a
	// few seconds, during which ingest answers 503).
	servers[2].Stop()
	waitLeaders(t, m.Stack.JS, "n3")

	responses := runWave(t, m, rand.New(rand.NewPCG(8, 8)))
	r := waitScores(t, m, "")
	g := waitScores(t, m, "?group_by=department")
	checkResult(t, responses, r, g)
}

// waitLeaders waits until every stream (events and key-value buckets) and
// the projector's consumer are led by a server other than gone.
func waitLeaders(t *testing.T, js jetstream.JetStream, gone string) {
	t.Helper()
	ctx := context.Background()
	streams := []string{schemas.EventStream, "KV_" + schemas.InvitationBucket, "KV_" + schemas.LockBucket}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ok := true
		for _, name := range streams {
			s, err := js.Stream(ctx, name)
			if err != nil || s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" || s.CachedInfo().Cluster.Leader == gone {
				ok = false
				break
			}
		}
		if ok {
			if c, err := js.Consumer(ctx, schemas.EventStream, schemas.ProjectorConsumer); err != nil ||
				c.CachedInfo().Cluster == nil || c.CachedInfo().Cluster.Leader == "" || c.CachedInfo().Cluster.Leader == gone {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("JetStream did not fail over within 60s")
		}
	}
}
