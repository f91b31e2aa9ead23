package projector

import (
	"context"
	"fmt"
	"net/http"

	"github.com/trustpulse/trustpulse/schemas"
)

// Lag returns how many events of the stream the projection has yet to
// complete: the stream's last sequence minus the checkpoint in ClickHouse
// (the one every projector of the consumer shares, so a standby waiting
// for the lease reports the active one's lag). It reads NATS and
// ClickHouse; their errors come back wrapped.
func (p *Projector) Lag(ctx context.Context) (uint64, error) {
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return 0, fmt.Errorf("projector: stream %s: %w", schemas.EventStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("projector: stream info: %w", err)
	}
	cp, err := p.readCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	if cp >= info.State.LastSeq {
		return 0, nil
	}
	return info.State.LastSeq - cp, nil
}

// Ready returns nil when the projection is at most maxLag events behind
// the stream, else a 503 projector_lagging error naming the lag, or the
// error of NATS or ClickHouse.
func (p *Projector) Ready(ctx context.Context, maxLag uint64) error {
	lag, err := p.Lag(ctx)
	if err != nil {
		return err
	}
	if lag > maxLag {
		return schemas.Errorf(http.StatusServiceUnavailable, "projector_lagging",
			"the projector's lag is %d events behind the event stream, above the bound of %d; it is catching up", lag, maxLag)
	}
	return nil
}
