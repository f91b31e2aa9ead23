package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// ConnectNATS connects to url with reconnects that never give up: a NATS
// restart must not end the process, only make ingest answer 503 meanwhile.
// opts come after these (metrics.NATSOptions counts disconnects, say).
func ConnectNATS(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.Timeout(5 * time.Second),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("deploy: nats %s: %w", url, err)
	}
	return nc, nil
}

// EnsureStreams creates or updates the event and pending streams and the
// key-value buckets with the given replica count. It is idempotent. The
// event stream is created split into partitions (schemas.StreamConfig) if it
// does not exist; if it exists split otherwise, EnsureStreams returns an
// error wrapping ErrPartitionMismatch that says how to change the count.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas, partitions int) error {
	return ensureStreams(ctx, js, replicas, partitions, false)
}

// ErrPartitionMismatch: the event stream is split into another number of
// partitions than the process was started with.
var ErrPartitionMismatch = errors.New("deploy: event stream partition count mismatch")

func ensureStreams(ctx context.Context, js jetstream.JetStream, replicas, partitions int, repartition bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ensureEventStream(ctx, js, replicas, partitions, repartition); err != nil {
		return err
	}
	for _, sc := range []jetstream.StreamConfig{schemas.PendingStreamConfig(replicas), schemas.OutboxStreamConfig(replicas)} {
		st, err := js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("deploy: stream %s: %w", sc.Name, err)
		}
		// A server older than 2.12 ignores allow_atomic and would store a
		// batch's messages one by one: refuse it rather than lose the
		// all-or-nothing submission.
		if sc.AllowAtomicPublish && !st.CachedInfo().Config.AllowAtomicPublish {
			return fmt.Errorf("deploy: stream %s: the NATS server does not support atomic batch publish (needs nats-server 2.12 or later)", sc.Name)
		}
	}
	for _, kv := range []jetstream.KeyValueConfig{schemas.InvitationBucketConfig(replicas), schemas.PeopleBucketConfig(replicas), schemas.InviteeBucketConfig(replicas), schemas.MailFailureBucketConfig(replicas), schemas.LockBucketConfig(replicas), schemas.LiveBucketConfig(replicas), schemas.GuardBucketConfig(replicas), schemas.SignInBucketConfig(replicas), schemas.PlanBucketConfig(replicas)} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("deploy: bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}

// ensureEventStream creates the event stream split into partitions, or
// checks that the existing one is split the same way and updates the rest
// of its configuration. Whichever process opens it first fixes the count;
// with repartition (a replay that changes it) a differing count is left for
// the replay to change.
func ensureEventStream(ctx context.Context, js jetstream.JetStream, replicas, partitions int, repartition bool) error {
	want := schemas.StreamConfig(replicas, partitions)
	for attempt := 0; ; attempt++ {
		st, err := js.Stream(ctx, schemas.EventStream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue // another process created it first: compare with that
			}
			if err != nil {
				return fmt.Errorf("deploy: stream %s: %w", want.Name, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("deploy: stream %s: %w", want.Name, err)
		}
		have := st.CachedInfo().Config
		n, err := schemas.StreamPartitions(have)
		if err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		if n != partitions {
			if repartition {
				return nil
			}
			return fmt.Errorf("%w: the stream %s is split into %d partition(s), this process was started with --projector-partitions %d. "+
				"Start every process with --projector-partitions %d (env TRUSTPULSE_PROJECTOR_PARTITIONS), or change the count: "+
				"stop ingest, let projection drain, stop every trustpulse serve, run 'trustpulse replay --projector-partitions %d' "+
				"(it re-partitions the stream and rebuilds the projections), then start everything with --projector-partitions %d",
				ErrPartitionMismatch, want.Name, n, partitions, n, partitions, partitions)
		}
		want.SubjectTransform = have.SubjectTransform
		if _, err := js.UpdateStream(ctx, want); err != nil {
			return fmt.Errorf("deploy: stream %s: %w", want.Name, err)
		}
		return nil
	}
}
