package guard

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// RecordStore keeps one record per organisation with a revision, the way
// a JetStream key-value bucket does: Save succeeds only if the record
// still has the revision it was loaded at.
type RecordStore interface {
	// Load returns the organisation's record and its revision; revision 0
	// and an empty record when there is none.
	Load(ctx context.Context, org string) (Record, uint64, error)
	// Save writes the record if the stored revision is still rev (0: none
	// stored yet), or returns ErrConflict.
	Save(ctx context.Context, org string, rec Record, rev uint64) error
}

// ErrConflict is Save's error when another decision wrote first.
var ErrConflict = errors.New("guard: record changed since it was read")

// maxAttempts bounds the retries of a decision that keeps losing the race
// to other replicas' decisions.
const maxAttempts = 16

// ErrBusy is Run's error when every attempt lost the race.
var ErrBusy = errors.New("guard: the record of served results is busy; try again")

// Run decides a request against the organisation's stored record and
// stores the new record, as one step across every process that shares the
// store: read, decide, compare-and-set, and on conflict all over again.
// waves is called on each attempt with the record read, to add the waves
// it needs.
func Run(ctx context.Context, store RecordStore, org string, req Request, waves map[string]Wave) (Decision, error) {
	for range maxAttempts {
		rec, rev, err := store.Load(ctx, org)
		if err != nil {
			return Decision{}, err
		}
		d := Decide(req, rec, waves)
		if !d.Changed {
			// Nothing new is learnt: the cells are unions of the record's
			// atoms, and so of any later record's, whoever wrote since.
			return d, nil
		}
		switch err := store.Save(ctx, org, d.Record, rev); {
		case err == nil:
			return d, nil
		case !errors.Is(err, ErrConflict):
			return Decision{}, err
		}
		if err := ctx.Err(); err != nil {
			return Decision{}, err
		}
	}
	return Decision{}, ErrBusy
}

// recordVersion is the encoding's version, first in the JSON.
const recordVersion = 1

type encoded struct {
	Version int `json:"v"`
	Record
}

// Marshal encodes a record: gzipped JSON.
func (r Record) Marshal() ([]byte, error) {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed) // a valid level: no error
	if err := json.NewEncoder(zw).Encode(encoded{Version: recordVersion, Record: r}); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Unmarshal decodes a record written by Marshal. A record it cannot read
// is an error, never an empty record: an empty one would forget what was
// served.
func Unmarshal(data []byte) (Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return Record{}, fmt.Errorf("guard: record: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return Record{}, fmt.Errorf("guard: record: %w", err)
	}
	var e encoded
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Record{}, fmt.Errorf("guard: record: %w", err)
	}
	if e.Version != recordVersion {
		return Record{}, fmt.Errorf("guard: record version %d, this build reads %d", e.Version, recordVersion)
	}
	for _, parts := range []map[string]Partition{e.Numbers, e.Comments} {
		for id, p := range parts {
			if len(p.Types) != len(p.Atoms) {
				return Record{}, fmt.Errorf("guard: record of wave %s: %d types, %d atoms", id, len(p.Types), len(p.Atoms))
			}
		}
	}
	return e.Record, nil
}
