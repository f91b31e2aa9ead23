package projector_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestProjectClickHouseRestart kills ClickHouse (as a crash would) while
// responses keep arriving, starts it again, and checks that nothing was lost
// or counted twice: events wait in JetStream until ClickHouse is back.
func TestProjectClickHouseRestart(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	tcp, err := localch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	http, err := localch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := localch.Options{TCPPort: tcp, HTTPPort: http}
	srv, err := localch.Start(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ch, err := deploy.OpenClickHouse(ctx, deploy.ClickHouseConfig{Addr: srv.Addr, Database: "restart", User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := schemas.Migrate(ctx, ch, quietLog()); err != nil {
		t.Fatal(err)
	}

	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(11, 11)), truth: newTruth()}
	pub.setup()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	p := projector.New(js, ch, projector.Config{BatchSize: 40, BatchWait: 20 * time.Millisecond}, testenv.Logger(t))
	go func() { done <- p.Run(runCtx) }()

	published := make(chan struct{})
	go func() {
		defer close(published)
		for range 30 {
			pub.responses(10)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(400 * time.Millisecond)
	srv.Kill()
	time.Sleep(time.Second)
	if srv, err = localch.Start(ctx, dir, opts); err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	<-published

	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var cp uint64
		if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint").Scan(&cp); err == nil && cp >= info.State.LastSeq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("projector did not catch up after ClickHouse came back")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkTables(t, ch, pub.truth)
}
