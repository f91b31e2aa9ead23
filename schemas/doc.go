// Package schemas is trustpulse's shared vocabulary: the contracts that the
// ingest, projector and query services agree on and that outlive any one of
// them.
//
//   - events.go and payloads.go: the versioned event envelope and the payload
//     of every event type, with strict decoding and an upcasting hook so that
//     old versions replay.
//   - streams.go: JetStream stream, subject, consumer and key-value bucket
//     definitions.
//   - migrations.go and migrations/*.sql: the ClickHouse tables as versioned,
//     idempotent migrations embedded in the binary.
//   - problem.go: the RFC 9457 problem+json error body both HTTP APIs return.
//
// A response flows: ingest/response_handlers.go publishes a ResponseSubmitted
// event (events.go) to the stream (streams.go); projector/project.go writes
// it to the answers table (migrations/); query/guard.go decides what of the
// aggregates may leave the process.
//
// The services import schemas, never each other.
package schemas
