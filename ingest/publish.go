package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// publish sends an event to the event stream durably: it returns once the
// stream has stored it, with its stream sequence.
func publish(ctx context.Context, js jetstream.JetStream, env schemas.Envelope) (uint64, error) {
	return publishTo(ctx, js, schemas.Subject(env.OrgID, env.Type), env)
}

// publishTo sends an event to a subject durably. The event id is the
// Nats-Msg-Id, so retries inside JetStream's duplicate window store it once.
func publishTo(ctx context.Context, js jetstream.JetStream, subject string, env schemas.Envelope) (uint64, error) {
	data, err := env.Marshal()
	if err != nil {
		return 0, err
	}
	return publishRaw(ctx, js, subject, env, data)
}

func publishRaw(ctx context.Context, js jetstream.JetStream, subject string, env schemas.Envelope, data []byte) (uint64, error) {
	msg := &nats.Msg{Subject: subject, Data: data}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var lastErr error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(env.ID.String()))
		if err == nil {
			return ack.Sequence, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("ingest: publish %s %s: %w", env.Type, env.ID, lastErr)
}
