package deploy

import (
	"context"
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
// key-value buckets with the given replica count. It is idempotent.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, sc := range []jetstream.StreamConfig{schemas.StreamConfig(replicas), schemas.PendingStreamConfig(replicas), schemas.OutboxStreamConfig(replicas)} {
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
	for _, kv := range []jetstream.KeyValueConfig{schemas.InvitationBucketConfig(replicas), schemas.PeopleBucketConfig(replicas), schemas.InviteeBucketConfig(replicas), schemas.MailFailureBucketConfig(replicas), schemas.LockBucketConfig(replicas), schemas.LiveBucketConfig(replicas), schemas.GuardBucketConfig(replicas)} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("deploy: bucket %s: %w", kv.Bucket, err)
		}
	}
	return nil
}
