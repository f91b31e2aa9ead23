package query

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// NewPublisher publishes to the event stream of js: each event on its
// subject, with its id as Nats-Msg-Id so that a retry is stored once.
func NewPublisher(js jetstream.JetStream) Publisher { return streamPublisher{js: js} }

type streamPublisher struct{ js jetstream.JetStream }

// Publish returns once the stream has stored env, retrying for up to 5 s.
func (p streamPublisher) Publish(ctx context.Context, env schemas.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: schemas.Subject(env.OrgID, env.Type), Data: data}
	var lastErr error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(env.ID.String())); err == nil {
			return nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return fmt.Errorf("query: publish %s %s: %w", env.Type, env.ID, lastErr)
}
