package schemas

import (
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// Managers' sign-in links. When a wave is sealed and its results are
// released, the notifier (package query) emails every manager whose
// subtree's result the guard serves a single-use link to the dashboard.
// The link's token is never stored: the bucket keeps its SHA-256 only.
const (
	// SignInBucket holds the sign-in links: SignInTokenKey(hash) →
	// SignIn, and SignInSentKey(org, wave, person) → the state of one
	// manager's email for one wave. Every entry expires with the bucket's
	// TTL (SignInBucketTTL).
	SignInBucket = "trustpulse_signin"
	// NotifierConsumer is the durable consumer of WaveSealed events that
	// emails managers their sign-in links.
	NotifierConsumer = "notifier-results-ready"
	// LetterResultsReady is the Letter kind of a manager's "your team's
	// results are ready" email.
	LetterResultsReady = "results_ready"
)

// SignInLifetime is how long a sign-in link works.
const SignInLifetime = 7 * 24 * time.Hour

// SignInBucketTTL is how long an entry of the sign-in bucket lives: a day
// past the link's lifetime, so that an expired link is still known (and
// refused as expired) for a while before it is forgotten.
const SignInBucketTTL = SignInLifetime + 24*time.Hour

// SignInBucketConfig defines the sign-in bucket.
func SignInBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      SignInBucket,
		Description: "managers' single-use sign-in links: sha256(token) -> manager, and which managers were emailed per wave",
		History:     1,
		TTL:         SignInBucketTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// SignIn is one sign-in link, stored under SignInTokenKey of its token's
// hex SHA-256. UsedAt is set, once, when it is redeemed.
type SignIn struct {
	Org       string     `json:"org"`
	WaveID    string     `json:"wave_id"`
	PersonID  string     `json:"person_id"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// SignInTokenKey is the key of a sign-in link by its token's hex SHA-256.
func SignInTokenKey(hash string) string { return "token." + hash }

// SignInSentKey is the key that records one manager's email for one wave
// (person ids are UUIDs, so the key is a valid KV key).
func SignInSentKey(org, wave, personID string) string {
	return "sent." + WaveRef(org, wave) + "." + personID
}

// The states of SignInSentKey: the email is being queued (it may or may
// not be in the outbox), or it is in the outbox.
const (
	SignInQueueing = "queueing"
	SignInQueued   = "queued"
)

// ResultsReadyMsgID is the Nats-Msg-Id of a manager's "results are ready"
// email for a wave: the same on every attempt, so the outbox keeps one.
func ResultsReadyMsgID(org, wave, personID string) string {
	return "results-ready-" + uuid.NewSHA1(sealNamespace, []byte(org+"/"+wave+"/results-ready/"+personID)).String()
}
