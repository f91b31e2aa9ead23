package projector

import (
	"context"
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"github.com/go-faster/city"
)

// seenIDs is a Bloom filter over the hashes of the event ids in
// projected_events, kept by a worker so that only ids it may hold are
// looked up there (dropDuplicates). A look-up reads every granule its ids
// fall in, and the ids are random: its cost grows with the batch and with
// the history (20 µs per event at 8 waves in docs/benchmarks.md), while a
// duplicate is rare.
//
// Why skipping the look-up for an id the filter does not hold is sound: a
// Bloom filter never answers "no" for a hash added to it, and a worker's
// filter holds every id that can be a duplicate's earlier copy:
//
//   - init loads it from the whole of projected_events (every partition's
//     rows, and those from before partitions), read with the same settings
//     as the look-up, after the emptying in a replay.
//   - From then on, only this worker adds the ids a later event of its
//     partition can repeat. A duplicate has its original's organisation,
//     so its partition, whose only writer is the worker holding its lease;
//     and the worker adds each batch's ids as it prepares it, before any
//     later batch's look-up.
//   - It is loaded again at every init: after any failure, and under every
//     new lease. A batch prepared and then abandoned leaves ids in the
//     filter that are not in the table: a false "maybe", which only costs a
//     look-up.
//
// The hash is ClickHouse's cityHash64, computed by the server while
// loading (only 8 bytes an id cross the wire) and by go-faster/city's
// CH64 for each batch. init checks that the two agree on a probe id and,
// if they do not (a server whose cityHash64 differs), disables the filter:
// every id is then looked up, as before it existed.
type seenIDs struct {
	segs []bloomSegment
	// off: every id may be held (the hash check failed).
	off bool
}

// bloomSegment is one fixed-size Bloom filter; when it holds its capacity
// the next, twice as large, takes the new hashes (a scalable Bloom filter),
// so the false-positive rate stays bounded however far the history grows.
type bloomSegment struct {
	words    []uint64
	mask     uint64 // bit count - 1, a power of two
	n, limit int
}

const (
	// bloomBitsPerID and bloomProbes give about a 2% false-positive rate
	// per segment: 8 bits per id, 1 MB per million ids.
	bloomBitsPerID = 8
	bloomProbes    = 5
	// bloomMinIDs is the smallest segment's capacity.
	bloomMinIDs = 1 << 16
)

func newSeenIDs(capacity int) *seenIDs {
	s := &seenIDs{}
	s.grow(max(capacity, bloomMinIDs))
	return s
}

func (s *seenIDs) grow(capacity int) {
	nbits := uint64(1) << bits.Len64(uint64(capacity*bloomBitsPerID-1))
	s.segs = append(s.segs, bloomSegment{words: make([]uint64, nbits/64), mask: nbits - 1, limit: capacity})
}

// probes derives the filter's bit positions from one 64-bit hash (double
// hashing; the step is odd, so the probes are distinct in a power-of-two
// table).
func probes(h uint64) (first, step uint64) { return h, bits.RotateLeft64(h, 32) | 1 }

func (s *seenIDs) add(h uint64) {
	last := &s.segs[len(s.segs)-1]
	if last.n >= last.limit {
		s.grow(2 * last.limit)
		last = &s.segs[len(s.segs)-1]
	}
	x, step := probes(h)
	for range bloomProbes {
		i := x & last.mask
		last.words[i/64] |= 1 << (i % 64)
		x += step
	}
	last.n++
}

// mayHold reports whether h may have been added; false is certain.
func (s *seenIDs) mayHold(h uint64) bool {
	if s.off {
		return true
	}
	first, step := probes(h)
	for i := range s.segs {
		seg := &s.segs[i]
		x, all := first, true
		for range bloomProbes {
			j := x & seg.mask
			if seg.words[j/64]&(1<<(j%64)) == 0 {
				all = false
				break
			}
			x += step
		}
		if all {
			return true
		}
	}
	return false
}

// size is how many hashes were added.
func (s *seenIDs) size() int {
	n := 0
	for _, seg := range s.segs {
		n += seg.n
	}
	return n
}

// idHash is ClickHouse's cityHash64 of an event id.
func idHash(id string) uint64 {
	return city.CH64(unsafe.Slice(unsafe.StringData(id), len(id)))
}

// hashProbe is the id init hashes on both sides to check they agree.
const hashProbe = "5f0c8e7a-2b1d-4c3e-9f6a-7d8b9c0e1f2a"

// The filter's loading queries.
const (
	sqlHashProbe    = "SELECT cityHash64('" + hashProbe + "')"
	sqlCountIDs     = "SELECT count() FROM projected_events"
	sqlProjectedIDs = "SELECT cityHash64(event_id) FROM projected_events"
)

// loadSeen builds the worker's filter from projected_events.
func (w *worker) loadSeen(ctx context.Context) (*seenIDs, error) {
	ctx = w.p.readCtx(ctx)
	start := time.Now()
	var probe uint64
	if err := w.p.ch.QueryRow(ctx, sqlHashProbe).Scan(&probe); err != nil {
		return nil, fmt.Errorf("projector: hash probe: %w", err)
	}
	if probe != idHash(hashProbe) {
		w.log.Warn("ClickHouse's cityHash64 differs from the projector's; every event id will be looked up in projected_events",
			"server", probe, "projector", idHash(hashProbe))
		return &seenIDs{off: true}, nil
	}
	var count uint64
	if err := w.p.ch.QueryRow(ctx, sqlCountIDs).Scan(&count); err != nil {
		return nil, fmt.Errorf("projector: count projected events: %w", err)
	}
	// Room for the history and a quarter more before a new segment.
	s := newSeenIDs(int(count + count/4))
	rows, err := w.p.ch.Query(ctx, sqlProjectedIDs)
	if err != nil {
		return nil, fmt.Errorf("projector: load projected event ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h uint64
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("projector: load projected event ids: %w", err)
		}
		s.add(h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projector: load projected event ids: %w", err)
	}
	w.log.Info("projected event ids loaded", "ids", s.size(), "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}
