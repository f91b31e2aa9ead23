package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// incrementCounter adds one to a decimal counter in a key-value bucket,
// with compare-and-set, retrying when another writer got there first.
func incrementCounter(ctx context.Context, js jetstream.JetStream, bucket, key string) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return err
	}
	for range 20 {
		entry, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err = kv.Create(ctx, key, []byte("1")); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
		case err != nil:
			return err
		default:
			n, perr := strconv.Atoi(string(entry.Value()))
			if perr != nil {
				return fmt.Errorf("ingest: counter %s: %w", key, perr)
			}
			if _, err = kv.Update(ctx, key, []byte(strconv.Itoa(n+1)), entry.Revision()); err == nil || !isWrongRevision(err) {
				return err
			}
		}
	}
	return fmt.Errorf("ingest: counter %s: too much contention", key)
}

// forgetLive deletes a sealed wave's live counts: its participation now
// comes from the released results.
func forgetLive(ctx context.Context, js jetstream.JetStream, org, wave string) error {
	kv, err := js.KeyValue(ctx, schemas.LiveBucket)
	if err != nil {
		return err
	}
	entries, err := readBucket(ctx, kv, org+"."+wave+".>")
	if err != nil {
		return err
	}
	for key := range entries {
		if err := kv.Purge(ctx, key); err != nil {
			return fmt.Errorf("mixer: forget live count: %w", err)
		}
	}
	return nil
}
