// Package ingest is where state changes enter trustpulse: survey responses
// over HTTP (response_handlers.go) and admin actions (admin.go), each
// validated and published as an event to the JetStream event stream.
//
// A response is accepted only for a valid, unused, unexpired invitation
// token. The invitation ledger (invitations.go), a key-value bucket keyed by
// the token's SHA-256, makes a token single-use with a compare-and-set; the
// ResponseSubmitted event that follows carries no token, id or name. What
// the survey page read of a link is kept in memory until its slot records a
// response (linkcache.go), so that posting the answers to /v1/responses
// costs the claim's compare-and-set and the publish, no read. The
// catalog (catalog.go) is ingest's in-memory view of surveys and waves, read
// from the stream.
package ingest
