package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// liveFlushEvery is how often gathered live counts are written.
const liveFlushEvery = 250 * time.Millisecond

// liveCounter gathers live participation counts in memory and adds them to
// the live bucket every liveFlushEvery, one compare-and-set per department
// with new responses, so that a response costs no round trip of its own.
// Several ingest replicas each add their own counts.
type liveCounter struct {
	js      jetstream.JetStream
	catalog *Catalog
	log     *slog.Logger
	mu      sync.Mutex
	pending map[liveKey]int
	stop    chan struct{}
	done    chan struct{}
}

type liveKey struct{ org, wave, department string }

func newLiveCounter(js jetstream.JetStream, catalog *Catalog, log *slog.Logger) *liveCounter {
	l := &liveCounter{js: js, catalog: catalog, log: log, pending: map[liveKey]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *liveCounter) add(org, wave, department string) {
	l.mu.Lock()
	l.pending[liveKey{org, wave, department}]++
	l.mu.Unlock()
}

func (l *liveCounter) run() {
	defer close(l.done)
	t := time.NewTicker(liveFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush()
		case <-l.stop:
			l.flush()
			return
		}
	}
}

// flush writes the gathered counts; what fails is kept for the next time.
// Counts of a wave closed meanwhile are dropped: its participation now
// comes from its released results.
func (l *liveCounter) flush() {
	l.mu.Lock()
	batch := l.pending
	l.pending = map[liveKey]int{}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for k, n := range batch {
		if w, ok := l.catalog.Wave(k.org, k.wave); ok && w.Closed {
			continue
		}
		err := incrementCounter(ctx, l.js, schemas.WaveLiveBucket(k.org, k.wave), schemas.LiveKey(k.org, k.wave, k.department), n)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			// A wave invited before waves had live buckets of their own.
			err = incrementCounter(ctx, l.js, schemas.LiveBucket, schemas.LiveKey(k.org, k.wave, k.department), n)
		}
		if err != nil {
			l.log.Warn("live participation not counted yet; retrying", "org", k.org, "wave", k.wave, "err", err)
			l.mu.Lock()
			l.pending[k] += n
			l.mu.Unlock()
		}
	}
}

// close writes what is gathered and stops.
func (l *liveCounter) close() {
	close(l.stop)
	<-l.done
}

// incrementCounter adds n to a decimal counter in a key-value bucket,
// with compare-and-set, retrying when another writer got there first.
func incrementCounter(ctx context.Context, js jetstream.JetStream, bucket, key string, n int) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return err
	}
	for range 20 {
		entry, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err = kv.Create(ctx, key, []byte(strconv.Itoa(n))); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
		case err != nil:
			return err
		default:
			cur, perr := strconv.Atoi(string(entry.Value()))
			if perr != nil {
				return fmt.Errorf("ingest: counter %s: %w", key, perr)
			}
			if _, err = kv.Update(ctx, key, []byte(strconv.Itoa(cur+n)), entry.Revision()); err == nil || !isWrongRevision(err) {
				return err
			}
		}
	}
	return fmt.Errorf("ingest: counter %s: too much contention", key)
}

// forgetLive purges a sealed wave's live counts kept in the shared bucket,
// before waves had their own (forgetWave deletes the wave's own): its
// participation now comes from the released results.
func forgetLive(ctx context.Context, js jetstream.JetStream, org, wave string) error {
	return purgeWave(ctx, js, schemas.LiveBucket, org, wave)
}

// purgeWave deletes, history and all, a bucket's keys of one wave
// (<org>.<wave>.*).
func purgeWave(ctx context.Context, js jetstream.JetStream, bucket, org, wave string) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return err
	}
	entries, err := readBucket(ctx, kv, org+"."+wave+".>")
	if err != nil {
		return err
	}
	for key := range entries {
		if err := kv.Purge(ctx, key); err != nil {
			return fmt.Errorf("ingest: purge %s of wave %s: %w", bucket, wave, err)
		}
	}
	return nil
}
