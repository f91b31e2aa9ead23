package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Rebuild empties every projection table and projects the whole stream again
// from its first event, returning once it has caught up with the stream as it
// was at the start. It holds the projector lease throughout, so it refuses to
// run (ErrLeaseHeld) while a projector serves, and no projector starts while
// it runs.
func (p *Projector) Rebuild(ctx context.Context) error {
	l, err := acquireLease(ctx, p.js, p.cfg.Consumer)
	if err != nil {
		return err
	}
	defer l.release(context.WithoutCancel(ctx))
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return fmt.Errorf("projector: stream: %w", err)
	}
	if err := stream.DeleteConsumer(ctx, p.cfg.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("projector: delete consumer: %w", err)
	}
	for _, t := range schemas.ProjectionTables {
		if err := p.ch.Exec(ctx, sqlTruncate+t); err != nil {
			return fmt.Errorf("projector: truncate %s: %w", t, err)
		}
	}
	p.log.Info("projections emptied; replaying the stream from its start")
	return p.runLeased(ctx, l, true)
}
