package query

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/query/guard"
	"github.com/trustpulse/trustpulse/schemas"
)

// kvRecords keeps the guard's records in the JetStream key-value bucket
// schemas.GuardBucket, one key per organisation. Every query replica that
// shares the bucket decides against the same record: Save is a
// compare-and-set on the key's revision. The last record read per
// organisation is kept decoded, keyed by its revision.
type kvRecords struct {
	js jetstream.JetStream

	mu      sync.Mutex
	kv      jetstream.KeyValue
	decoded map[string]decodedRecord
}

type decodedRecord struct {
	rev uint64
	rec guard.Record
}

// NewRecordStore returns the guard's record store in JetStream.
func NewRecordStore(js jetstream.JetStream) guard.RecordStore {
	return &kvRecords{js: js, decoded: map[string]decodedRecord{}}
}

func (s *kvRecords) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.js.KeyValue(ctx, schemas.GuardBucket)
	if err != nil {
		return nil, fmt.Errorf("query: guard record bucket: %w", err)
	}
	s.kv = kv
	return kv, nil
}

func (s *kvRecords) Load(ctx context.Context, org string) (guard.Record, uint64, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return guard.Record{}, 0, err
	}
	e, err := kv.Get(ctx, org)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Nothing served yet — unless the key was deleted or purged, which
		// would forget what was served: then refuse to decide.
		if _, herr := kv.History(ctx, org); herr == nil {
			return guard.Record{}, 0, fmt.Errorf("query: the guard's record of %s was deleted; restore it from a backup", org)
		} else if !errors.Is(herr, jetstream.ErrKeyNotFound) {
			return guard.Record{}, 0, fmt.Errorf("query: guard record: %w", herr)
		}
		return guard.Record{}, 0, nil
	}
	if err != nil {
		return guard.Record{}, 0, fmt.Errorf("query: guard record: %w", err)
	}
	s.mu.Lock()
	d, ok := s.decoded[org]
	s.mu.Unlock()
	if ok && d.rev == e.Revision() {
		return d.rec, d.rev, nil
	}
	rec, err := guard.Unmarshal(e.Value())
	if err != nil {
		return guard.Record{}, 0, err
	}
	s.mu.Lock()
	s.decoded[org] = decodedRecord{rev: e.Revision(), rec: rec}
	s.mu.Unlock()
	return rec, e.Revision(), nil
}

func (s *kvRecords) Save(ctx context.Context, org string, rec guard.Record, rev uint64) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	b, err := rec.Marshal()
	if err != nil {
		return err
	}
	var next uint64
	if rev == 0 {
		next, err = kv.Create(ctx, org, b)
	} else {
		next, err = kv.Update(ctx, org, b, rev)
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrKeyExists),
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		// replicated buckets answer with the second code
		return guard.ErrConflict
	case err != nil:
		return fmt.Errorf("query: guard record: %w", err)
	}
	s.mu.Lock()
	s.decoded[org] = decodedRecord{rev: next, rec: rec}
	s.mu.Unlock()
	return nil
}

// Ready reports whether the record's bucket answers.
func (s *kvRecords) Ready(ctx context.Context) error {
	if !s.js.Conn().IsConnected() {
		return errors.New("query: NATS not connected")
	}
	_, err := s.js.KeyValue(ctx, schemas.GuardBucket)
	return err
}
