package query

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Caching. A released wave never changes (its responses are sealed and
// nothing after the seal counts), so whatever is computed from released
// waves alone is kept in memory: a scope's raw aggregates and the response
// type counts the guard works from. What does change is read on every
// request: the record of served cells. The list of waves and the
// projector's checkpoint are kept for a second, so a wave's results may
// appear up to a second after they are ready.

// memo is a bounded map; when full, it forgets an arbitrary half.
type memo[V any] struct {
	mu       sync.Mutex
	max      int
	entries  map[string]V
	disabled bool
}

func newMemo[V any](max int) *memo[V] { return &memo[V]{max: max, entries: map[string]V{}} }

func (m *memo[V]) get(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.entries[key]
	return v, ok && !m.disabled
}

func (m *memo[V]) put(key string, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) >= m.max {
		n := 0
		for k := range m.entries {
			if n >= m.max/2 {
				break
			}
			delete(m.entries, k)
			n++
		}
	}
	m.entries[key] = v
}

// DisableCaching makes the server compute everything on every request,
// as if each were the first: for measuring what caching saves.
func (s *Server) DisableCaching() {
	for _, m := range []interface{ disable() }{s.waveList, s.scopeData, s.types, s.driverResults} {
		m.disable()
	}
}

func (m *memo[V]) disable() { m.mu.Lock(); m.disabled = true; m.mu.Unlock() }

// listTTL is how long the list of waves and the checkpoint are kept.
const listTTL = time.Second

type wavesEntry struct {
	waves []WaveInfo
	cp    uint64
	at    time.Time
}

// wavesAndCheckpoint returns an organisation's waves and the projector's
// checkpoint, at most listTTL old — or, while one request refreshes an
// expired entry, the expired one to every other request, so that the
// requests in flight do not all query ClickHouse at the same moment. An
// older entry can only hold fewer released waves (the checkpoint only
// grows), never release one early.
func (s *Server) wavesAndCheckpoint(ctx context.Context, org string) ([]WaveInfo, uint64, error) {
	e, ok := s.waveList.get(org)
	if ok && time.Since(e.at) < listTTL {
		return e.waves, e.cp, nil
	}
	if ok {
		s.refreshMu.Lock()
		busy := s.refreshing[org]
		if !busy {
			s.refreshing[org] = true
		}
		s.refreshMu.Unlock()
		if busy {
			return e.waves, e.cp, nil
		}
		defer func() {
			s.refreshMu.Lock()
			delete(s.refreshing, org)
			s.refreshMu.Unlock()
		}()
	}
	// The checkpoint first: the projector lands an event's rows before the
	// checkpoint that covers it, so every wave event at or below cp is in
	// the tables read after it. Read the other way round, a close and seal
	// landing between the two reads would be counted by the checkpoint but
	// missing from the waves: a released wave served as still open.
	cp, err := s.store.Checkpoint(ctx, s.checkpointConsumer(org))
	if err != nil {
		return nil, 0, err
	}
	waves, err := s.store.Waves(ctx, org)
	if err != nil {
		return nil, 0, err
	}
	s.waveList.put(org, wavesEntry{waves: waves, cp: cp, at: time.Now()})
	return waves, cp, nil
}

// scopeKey names a scope's data: its organisation, waves (with their
// seals), filter and group-by.
func scopeKey(org string, sc Scope, groupBy string) string {
	var b strings.Builder
	b.WriteString(org)
	for _, w := range sc.Waves {
		b.WriteString("|" + w.ID + "@" + strconv.FormatUint(w.SealSeq, 10))
	}
	// Values are quoted: a cohort value may hold '|' or '=', and two
	// scopes must never share a key.
	for _, c := range sc.Filter {
		op := "="
		if c.Not {
			op = "!="
		}
		b.WriteString("|" + c.Attr + op + strconv.Quote(strings.Join(c.Values, typeSep)))
	}
	b.WriteString("|by=" + groupBy)
	return b.String()
}

// driversKey names a driver-to-questions map.
func driversKey(drivers map[string][]string) string {
	names := make([]string, 0, len(drivers))
	for d, qs := range drivers {
		names = append(names, d+"="+strings.Join(qs, ","))
	}
	slices.Sort(names)
	return strings.Join(names, ";")
}
