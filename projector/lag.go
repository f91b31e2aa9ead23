package projector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Lags returns, for every partition of the stream (not only this
// projector's), how far its projection is behind: the stream sequence of
// the partition's last event minus the partition's checkpoint in
// ClickHouse. Both are stream sequences, which every partition shares, so
// for N > 1 a lag counts the events of other partitions in between too: it
// is an upper bound of the partition's own events left, and 0 exactly when
// the partition is caught up. Checkpoints are shared by every process of a
// partition, so a standby reports the active worker's lag. It reads NATS
// and ClickHouse; their errors come back wrapped.
func (p *Projector) Lags(ctx context.Context) (map[int]uint64, error) {
	out := make(map[int]uint64, p.cfg.Partitions)
	for part := range p.cfg.Partitions {
		last, err := lastSeq(ctx, p.js, schemas.PartitionFilter(part, p.cfg.Partitions))
		if err != nil {
			return nil, err
		}
		cp, err := readCheckpoint(ctx, p.ch, schemas.PartitionConsumer(p.cfg.Consumer, part, p.cfg.Partitions))
		if err != nil {
			return nil, err
		}
		if last > cp {
			out[part] = last - cp
		} else {
			out[part] = 0
		}
	}
	return out, nil
}

// Lag returns the sum of Lags over the partitions: with one partition, how
// many events of the stream the projection has yet to complete.
func (p *Projector) Lag(ctx context.Context) (uint64, error) {
	lags, err := p.Lags(ctx)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, l := range lags {
		sum += l
	}
	return sum, nil
}

// Ready returns nil when the projection of every partition this projector
// works on (Config.PartitionIDs; all by default) is at most maxLag events
// behind the stream (Lags), else a 503 projector_lagging error naming the
// partitions behind, or the error of NATS or ClickHouse. Another process's
// partitions do not make this one unready (red team, 2026-12-02: one dead
// partition's process made every projector unready); the lag gauge shows
// every partition.
func (p *Projector) Ready(ctx context.Context, maxLag uint64) error {
	lags, err := p.Lags(ctx)
	if err != nil {
		return err
	}
	var behind []string
	for _, part := range p.cfg.PartitionIDs {
		if lag := lags[part]; lag > maxLag {
			behind = append(behind, fmt.Sprintf("partition %d is %d", part, lag))
		}
	}
	if len(behind) == 0 {
		return nil
	}
	if p.cfg.Partitions == 1 {
		return schemas.Errorf(http.StatusServiceUnavailable, "projector_lagging",
			"the projector's lag is %d events behind the event stream, above the bound of %d", lags[0], maxLag)
	}
	sort.Strings(behind)
	return schemas.Errorf(http.StatusServiceUnavailable, "projector_lagging",
		"the projector lags the event stream above the bound of %d events: %s behind", maxLag, strings.Join(behind, ", "))
}

// lastSeq is the stream sequence of the last message matching filter (the
// stream's last for ""), 0 if there is none.
func lastSeq(ctx context.Context, js jetstream.JetStream, filter string) (uint64, error) {
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return 0, fmt.Errorf("projector: stream %s: %w", schemas.EventStream, err)
	}
	if filter == "" {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("projector: stream info: %w", err)
		}
		return info.State.LastSeq, nil
	}
	m, err := stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projector: last message of %s: %w", filter, err)
	}
	return m.Sequence, nil
}
