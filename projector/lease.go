package projector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// ErrLeaseHeld is returned when another projector (or a replay) holds the
// projection lease.
var ErrLeaseHeld = errors.New("projector: another projector or a replay holds the projection lease")

// errLeaseLost marks a renewal that failed: the worker stops rather than
// write without the lease.
var errLeaseLost = errors.New("projector: lease lost")

// lease is a key in the lock bucket that only one holder can create. It
// expires after schemas.LeaseTTL unless renewed.
type lease struct {
	kv  jetstream.KeyValue
	key string
	rev uint64
}

// acquireLease creates the lease key, or fails with ErrLeaseHeld.
func acquireLease(ctx context.Context, js jetstream.JetStream, key string) (*lease, error) {
	kv, err := js.KeyValue(ctx, schemas.LockBucket)
	if err != nil {
		return nil, fmt.Errorf("projector: lock bucket: %w", err)
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s pid %d since %s", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	rev, err := kv.Create(ctx, key, []byte(holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("projector: acquire lease: %w", err)
	}
	return &lease{kv: kv, key: key, rev: rev}, nil
}

// renew extends the lease; an error means it was lost.
func (l *lease) renew(ctx context.Context) error {
	e, err := l.kv.Get(ctx, l.key)
	if err != nil {
		return fmt.Errorf("%w: renew: %w", errLeaseLost, err)
	}
	rev, err := l.kv.Update(ctx, l.key, e.Value(), l.rev)
	if err != nil {
		return fmt.Errorf("%w: renew: %w", errLeaseLost, err)
	}
	l.rev = rev
	return nil
}

// release gives the lease up if it is still ours.
func (l *lease) release(ctx context.Context) {
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
