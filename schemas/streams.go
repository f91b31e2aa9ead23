package schemas

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream names. The stream is the source of truth: limits retention, kept
// forever by default, never a work queue.
const (
	// EventStream holds every event of every organisation.
	EventStream = "TRUSTPULSE_EVENTS"
	// SubjectPrefix starts every event subject: trustpulse.events.<org>.<type>.
	SubjectPrefix = "trustpulse.events"
	// PendingStream holds accepted responses until their wave closes; the
	// mixer then publishes them to EventStream in random order and purges
	// them here. Subjects: trustpulse.pending.<org>.<wave>.
	PendingStream = "TRUSTPULSE_PENDING"
	// PendingPrefix starts every pending subject.
	PendingPrefix = "trustpulse.pending"
	// ProjectorConsumer is the durable pull consumer the ClickHouse projector reads.
	ProjectorConsumer = "projector-clickhouse"
	// InvitationBucket is the invitation ledger: token hash → Invitation.
	InvitationBucket = "trustpulse_invitations"
	// OutboxStream queues emails until they are sent (a work queue: a sent
	// or finally failed email is removed). Subjects: trustpulse.outbox.<org>.<wave>.
	OutboxStream = "TRUSTPULSE_OUTBOX"
	// OutboxPrefix starts every outbox subject.
	OutboxPrefix = "trustpulse.outbox"
	// PostmanConsumer is the durable consumer that sends the outbox.
	PostmanConsumer = "postman"
	// MailFailureBucket records emails that could not be delivered, for admins.
	MailFailureBucket = "trustpulse_mail_failures"
	// PeopleBucket is the roster: <org>.<employee id> → Person. It is the
	// only place emails and names are kept.
	PeopleBucket = "trustpulse_people"
	// LockBucket holds leases, such as the one that makes the projector a singleton.
	LockBucket = "trustpulse_locks"
	// GuardBucket holds the anonymity guard's record per organisation: the
	// partition of response types that the results served so far induce
	// (package query/guard). Every query replica decides against it with a
	// compare-and-set on the key's revision.
	GuardBucket = "trustpulse_guard"
)

// GuardBucketConfig defines the guard's record bucket. The record is never
// deleted: forgetting what was served would let it be served apart again.
func GuardBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      GuardBucket,
		Description: "anonymity guard: org -> partition of response types served so far",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Subject returns the subject an event of type t for org is published on.
func Subject(org string, t EventType) string {
	return fmt.Sprintf("%s.%s.%s", SubjectPrefix, org, t)
}

// SubjectFilter returns the subject filter matching events of type t of every
// organisation.
func SubjectFilter(t EventType) string { return fmt.Sprintf("%s.*.%s", SubjectPrefix, t) }

// PendingSubject is the subject a response to a wave waits on.
func PendingSubject(org, wave string) string {
	return fmt.Sprintf("%s.%s.%s", PendingPrefix, org, wave)
}

// PendingStreamConfig defines the pending stream. Its messages live from a
// response's acceptance until its wave is sealed. It allows atomic batch
// publish (nats-server 2.12 or later): a response and its comments are
// stored together or not at all.
func PendingStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               PendingStream,
		Description:        "trustpulse responses held until their wave closes, then published shuffled",
		Subjects:           []string{PendingPrefix + ".>"},
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Discard:            jetstream.DiscardNew,
		Replicas:           replicas,
		Duplicates:         DedupWindow,
		AllowAtomicPublish: true,
		// The seal gets a wave's messages by sequence (see HeldStreamConfig).
		AllowDirect: true,
	}
}

// SealEventID is the event id of a wave's WaveSealed event. It is derived
// from the wave, so that every attempt to seal a wave publishes the same
// event and the stream and the projector keep one.
func SealEventID(org, wave string) uuid.UUID {
	return uuid.NewSHA1(sealNamespace, []byte(org+"/"+wave))
}

// CloseEventID is the event id of a wave's WaveClosed event, derived from
// the wave for the same reason.
func CloseEventID(org, wave string) uuid.UUID {
	return uuid.NewSHA1(sealNamespace, []byte(org+"/"+wave+"/closed"))
}

var sealNamespace = uuid.MustParse("3f1f8a52-8a4e-4c8e-9a8e-5d0c2b7a9e11")

// DedupWindow is how long JetStream remembers Nats-Msg-Id values. Publishers
// retry within it; the projector deduplicates by event id beyond it.
const DedupWindow = 10 * time.Minute

// StreamConfig is the event stream's definition. replicas is 1 on a single
// server and 3 (or 5) on a JetStream cluster. partitions > 1 adds the
// subject transform that stores events partitioned by organisation
// (partitions.go); 1 (or less) stores subjects as published.
func StreamConfig(replicas, partitions int) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        EventStream,
		Description: "trustpulse events: the source of truth for every projection",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew, // never drop history to make room
		Replicas:    replicas,
		Duplicates:  DedupWindow,
	}
	if partitions > 1 {
		cfg.SubjectTransform = partitionTransform(partitions)
	}
	return cfg
}

// InvitationBucketConfig is the invitation ledger's definition. History is 1:
// the ledger keeps only whether a link is still usable.
func InvitationBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      InvitationBucket,
		Description: "invitation ledger: sha256(token) -> wave, cohort, state",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// OutboxSubject is the subject of a wave's emails.
func OutboxSubject(org, wave string) string { return fmt.Sprintf("%s.%s.%s", OutboxPrefix, org, wave) }

// OutboxStreamConfig defines the outbox.
func OutboxStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        OutboxStream,
		Description: "trustpulse emails waiting to be sent",
		Subjects:    []string{OutboxPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  DedupWindow,
	}
}

// MailFailureBucketConfig defines the bucket of undeliverable emails.
func MailFailureBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      MailFailureBucket,
		Description: "emails that could not be delivered: org.wave.address-hash -> reason",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Letter is one email to send: an invitation (or later a reminder) to one
// invitee, with the survey link. It lives in the outbox only until sent.
type Letter struct {
	Org string `json:"org"`
	// FromName is the organisation's sender name; empty uses the default.
	FromName string `json:"from_name,omitempty"`
	WaveID   string `json:"wave_id"`
	// Kind is "invitation", "reminder" or LetterResultsReady (a manager's
	// sign-in link; ClosesAt is then when the link expires).
	Kind     string    `json:"kind"`
	To       string    `json:"to"`
	Name     string    `json:"name"`
	Link     string    `json:"link"`
	ClosesAt time.Time `json:"closes_at"`
	// Plan is the open action plan of the invitee's team (their direct
	// manager's, from the people bucket), if any.
	Plan *LetterPlan `json:"plan,omitempty"`
}

// LetterPlan is a team's open action plan as an email shows it.
type LetterPlan struct {
	WaveID       string   `json:"wave_id"`
	FocusDrivers []string `json:"focus_drivers"`
	Commitments  []string `json:"commitments"`
}

// MailFailure is a permanently failed email, as admins see it.
type MailFailure struct {
	WaveID string    `json:"wave_id"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// PeopleBucketConfig defines the roster bucket.
func PeopleBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      PeopleBucket,
		Description: "roster: org.employee_id -> identity and attributes",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Person is one employee in the people bucket.
type Person struct {
	PersonID   string `json:"person_id"`
	EmployeeID string `json:"employee_id"`
	Email      string `json:"email"`
	Name       string `json:"name"`
	Department string `json:"department"`
	Team       string `json:"team"`
	Location   string `json:"location"`
	ManagerID  string `json:"manager_id,omitempty"`
	StartDate  string `json:"start_date"`
	LeftOn     string `json:"left_on,omitempty"`
	// ManagerPersonID is the person id of ManagerID, as the person's last
	// EmployeeJoined/EmployeeUpdated event carried it.
	ManagerPersonID string `json:"manager_person_id,omitempty"`
}

// PersonKey is a person's key in the people bucket.
func PersonKey(org, employeeID string) string { return org + "." + employeeID }

// LockBucketConfig defines the lease bucket; a lease not renewed within
// LeaseTTL expires.
func LockBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:   LockBucket,
		History:  1,
		TTL:      LeaseTTL,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	}
}

// LeaseTTL is how long a lease lives without renewal.
const LeaseTTL = 15 * time.Second

// Invitation is one entry of the invitation ledger, stored under the hex
// SHA-256 of its token. The token itself is never stored. Slot names the
// invitee's single response: a reminder's new link shares the slot of the
// first, and the slot entry (SlotKey) says whether it was used — never which
// response it produced.
type Invitation struct {
	Org       string    `json:"org"`
	WaveID    string    `json:"wave_id"`
	Cohort    Cohort    `json:"cohort"`
	ExpiresAt time.Time `json:"expires_at"`
	Slot      string    `json:"slot"`
	// PlanTeam is the invitee's direct manager's person id as the people
	// bucket had it when the link was issued, so that the survey and
	// thanks pages can show their team's open action plan. It lives in the
	// wave's ledger only (deleted at the seal) and never goes into a
	// response: responses carry the stored cohort alone.
	PlanTeam string `json:"plan_team,omitempty"`
}

// SlotKey is the ledger key of a response slot.
func SlotKey(slot string) string { return "slot." + slot }

// Slot is the state of a response slot.
type Slot struct {
	Used bool `json:"used"`
}

// InviteeBucket maps the invitees of an open wave to their slots
// (<org>.<wave>.<employee id> → slot), so that reminders reach only those who
// have not answered. The mixer deletes a wave's entries when it seals it.
const InviteeBucket = "trustpulse_invitees"

// InviteeBucketConfig defines the invitee bucket.
func InviteeBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      InviteeBucket,
		Description: "open waves' invitees: org.wave.employee_id -> response slot; deleted at seal",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// InviteeKey is an invitee's key in the invitee bucket.
func InviteeKey(org, wave, employeeID string) string { return org + "." + wave + "." + employeeID }

// LiveBucket counts the responses of open waves per department
// (<org>.<wave>.<department, base64url> → decimal count), so that
// participation can be shown while a wave is open, for waves invited before
// each wave had its own (WaveLiveBucket). It holds counts only, never
// answers; the mixer purges a wave's counts when it seals it.
const LiveBucket = "trustpulse_live"

// LiveBucketConfig defines the live participation bucket.
func LiveBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LiveBucket,
		Description: "open waves' response counts: org.wave.department -> count; deleted at seal",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// LiveKey is a department's counter of an open wave.
func LiveKey(org, wave, department string) string {
	return org + "." + wave + "." + base64.RawURLEncoding.EncodeToString([]byte(department))
}

// LiveDepartment returns the department a LiveKey counts.
func LiveDepartment(key string) (string, bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(key[i+1:])
	return string(b), err == nil
}

// Per-wave resources. Everything that could tie a response to a person
// while a wave is open — which link is whose slot, which slot was used,
// which employee has which slot, the held responses — lives in a stream or
// bucket of the wave's own, created when its first invitation is issued
// and deleted whole when it is sealed, so that nothing of it stays in
// JetStream's files (a purge leaves the bytes in block files; deleting the
// stream removes them).

// WaveRef names a wave's own resources: the first 16 hex digits of the
// SHA-256 of org/wave (org and wave ids may hold '_', so joining them
// would be ambiguous).
func WaveRef(org, wave string) string {
	h := sha256.Sum256([]byte(org + "/" + wave))
	return hex.EncodeToString(h[:8])
}

// HeldPrefix starts the subject of a wave's held responses.
const HeldPrefix = "trustpulse.held"

// HeldSubject is the subject a response to a wave is held on until the
// seal.
func HeldSubject(org, wave string) string { return fmt.Sprintf("%s.%s.%s", HeldPrefix, org, wave) }

// HeldStream is the name of a wave's stream of held responses.
func HeldStream(org, wave string) string { return "TRUSTPULSE_HELD_" + WaveRef(org, wave) }

// HeldStreamConfig defines a wave's stream of held responses. It allows
// direct gets: the seal reads its messages one by one, by sequence, in a
// random order, and a direct get is answered by the stream itself rather
// than through the JetStream API's queue.
func HeldStreamConfig(org, wave string, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        HeldStream(org, wave),
		Description: "responses of one open wave, held until its seal; deleted at the seal",
		Subjects:    []string{HeldSubject(org, wave)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  10 * time.Minute,
		// A response and its comments are stored as one atomic batch.
		AllowAtomicPublish: true,
		AllowDirect:        true,
	}
}

// WaveLedgerBucket is the name of a wave's own invitation ledger: token
// hash → Invitation, and SlotKey(slot) → Slot. The shared
// InvitationBucket then holds only token hash → InvitationIndex.
func WaveLedgerBucket(org, wave string) string { return "trustpulse_ledger_" + WaveRef(org, wave) }

// WaveInviteeBucket is the name of a wave's own invitee bucket: employee
// id → slot, and the markers of reminders and scheduled invitations.
func WaveInviteeBucket(org, wave string) string { return "trustpulse_invitees_" + WaveRef(org, wave) }

// WaveLiveBucket is the name of a wave's own live participation bucket:
// LiveKey → decimal count of responses so far, per department. Waves
// invited before it existed count in LiveBucket.
func WaveLiveBucket(org, wave string) string { return "trustpulse_live_" + WaveRef(org, wave) }

// WaveBucketConfig defines a wave's own bucket.
func WaveBucketConfig(name string, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "one open wave's links, slots, invitees or live counts; deleted at the seal",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// InvitationIndex is the shared ledger's entry for a link whose
// invitation lives in its wave's own ledger: only which wave.
type InvitationIndex struct {
	Org    string `json:"org"`
	WaveID string `json:"wave_id"`
}
