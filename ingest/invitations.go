package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Ledger errors. Callers map them to pages or problem codes.
var (
	ErrTokenUnknown = errors.New("invitation link not recognised")
	ErrTokenUsed    = errors.New("invitation link already used")
	ErrTokenExpired = errors.New("invitation link expired")
)

// tokenBytes is the entropy of a token: 256 random bits.
const tokenBytes = 32

// NewToken returns a fresh, unguessable invitation token (URL-safe).
func NewToken() string {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		panic("ingest: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TokenHash is the ledger key of a token: hex SHA-256. A token is never
// stored, only this hash.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// wellFormed reports whether s has the shape of a token, so that garbage is
// refused without touching the ledger.
func wellFormed(token string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == tokenBytes
}

// Ledger is the invitation ledger. A link's invitation (its cohort and its
// response slot) and the slot's state live in the wave's own bucket
// (schemas.WaveLedgerBucket), deleted whole at the seal; the shared bucket
// (schemas.InvitationBucket) maps the link's hash to its wave only
// (schemas.InvitationIndex). Entries written before waves had buckets of
// their own hold the whole invitation in the shared bucket, with their
// slots beside it; they are read as before.
type Ledger struct {
	js    jetstream.JetStream
	index jetstream.KeyValue
	// Replicas is the replica count of the buckets and streams of new
	// waves (deploy's --nats-replicas).
	Replicas int

	mu    sync.Mutex
	waves map[string]jetstream.KeyValue // by bucket name
	held  map[string]bool               // held streams known to exist

	// links keeps the Lookups of links not yet used (linkcache.go).
	links *linkCache
}

// OpenLedger opens the ledger bucket (deploy.EnsureStreams creates it).
func OpenLedger(ctx context.Context, js jetstream.JetStream) (*Ledger, error) {
	kv, err := js.KeyValue(ctx, schemas.InvitationBucket)
	if err != nil {
		return nil, fmt.Errorf("ingest: invitation ledger: %w", err)
	}
	return &Ledger{js: js, index: kv, Replicas: 1, waves: map[string]jetstream.KeyValue{}, held: map[string]bool{},
		links: newLinkCache(defaultLinkCacheSize)}, nil
}

// waveBucket opens a wave's own bucket, creating it if create is set.
func (l *Ledger) waveBucket(ctx context.Context, name string, create bool) (jetstream.KeyValue, error) {
	l.mu.Lock()
	kv, ok := l.waves[name]
	l.mu.Unlock()
	if ok {
		return kv, nil
	}
	var err error
	if create {
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, schemas.WaveBucketConfig(name, l.Replicas))
	} else {
		kv, err = l.js.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: bucket %s: %w", name, err)
	}
	l.mu.Lock()
	l.waves[name] = kv
	l.mu.Unlock()
	return kv, nil
}

// EnsureWave creates a wave's own buckets and its stream of held
// responses, if they do not exist yet. Issuing an invitation does it.
func (l *Ledger) EnsureWave(ctx context.Context, org, wave string) error {
	for _, name := range []string{schemas.WaveLedgerBucket(org, wave), schemas.WaveInviteeBucket(org, wave), schemas.WaveLiveBucket(org, wave)} {
		if _, err := l.waveBucket(ctx, name, true); err != nil {
			return err
		}
	}
	stream := schemas.HeldStream(org, wave)
	l.mu.Lock()
	known := l.held[stream]
	l.mu.Unlock()
	if known {
		return nil
	}
	st, err := l.js.CreateOrUpdateStream(ctx, schemas.HeldStreamConfig(org, wave, l.Replicas))
	if err != nil {
		return fmt.Errorf("ingest: stream %s: %w", stream, err)
	}
	if !st.CachedInfo().Config.AllowAtomicPublish {
		return fmt.Errorf("ingest: stream %s: the NATS server does not keep atomic batches (it needs nats-server 2.12 or later)", stream)
	}
	l.mu.Lock()
	l.held[stream] = true
	l.mu.Unlock()
	return nil
}

// Invitees opens a wave's own invitee bucket (employee id → slot).
func (l *Ledger) Invitees(ctx context.Context, org, wave string) (jetstream.KeyValue, error) {
	if err := l.EnsureWave(ctx, org, wave); err != nil {
		return nil, err
	}
	return l.waveBucket(ctx, schemas.WaveInviteeBucket(org, wave), false)
}

// Issue stores a new invitation with a new response slot and returns its
// token and slot.
func (l *Ledger) Issue(ctx context.Context, inv schemas.Invitation) (token, slot string, err error) {
	if err := l.EnsureWave(ctx, inv.Org, inv.WaveID); err != nil {
		return "", "", err
	}
	kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(inv.Org, inv.WaveID), false)
	if err != nil {
		return "", "", err
	}
	inv.Slot = uuid.NewString()
	val, _ := json.Marshal(schemas.Slot{})
	if _, err := kv.Create(ctx, schemas.SlotKey(inv.Slot), val); err != nil {
		return "", "", fmt.Errorf("ingest: store invitation: %w", err)
	}
	token, err = l.IssueForSlot(ctx, inv)
	return token, inv.Slot, err
}

// IssueForSlot stores another link for an existing slot (a reminder's).
// Either link records the slot's one response.
func (l *Ledger) IssueForSlot(ctx context.Context, inv schemas.Invitation) (string, error) {
	if err := l.EnsureWave(ctx, inv.Org, inv.WaveID); err != nil {
		return "", err
	}
	kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(inv.Org, inv.WaveID), false)
	if err != nil {
		return "", err
	}
	token := NewToken()
	val, err := json.Marshal(inv)
	if err != nil {
		return "", err
	}
	if _, err := kv.Create(ctx, TokenHash(token), val); err != nil {
		return "", fmt.Errorf("ingest: store invitation: %w", err)
	}
	idx, _ := json.Marshal(schemas.InvitationIndex{Org: inv.Org, WaveID: inv.WaveID})
	if _, err := l.index.Create(ctx, TokenHash(token), idx); err != nil {
		return "", fmt.Errorf("ingest: store invitation: %w", err)
	}
	return token, nil
}

// slotBucket is the bucket that holds an invitation's slot: its wave's own,
// or the shared one for invitations written before waves had their own.
func (l *Ledger) slotBucket(ctx context.Context, org, wave string, legacy bool) (jetstream.KeyValue, error) {
	if legacy {
		return l.index, nil
	}
	return l.waveBucket(ctx, schemas.WaveLedgerBucket(org, wave), false)
}

// SlotUsed reports whether a slot of a wave has recorded its response.
func (l *Ledger) SlotUsed(ctx context.Context, org, wave, slot string) (bool, error) {
	kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(org, wave), false)
	if err != nil {
		return false, err
	}
	st, _, err := readSlot(ctx, kv, slot)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// A slot of an invitation written before waves had their own
		// buckets.
		st, _, err = readSlot(ctx, l.index, slot)
	}
	if err != nil {
		return false, err
	}
	return st.Used, nil
}

// Claim is an invitation looked up for use, not yet marked used.
type Claim struct {
	Invitation schemas.Invitation
	hash       string // the link's ledger key
	slotRev    uint64
	slots      jetstream.KeyValue
	// Legacy marks an invitation written before waves had their own
	// buckets: its response is held on the shared pending stream.
	Legacy bool
	// cached says the claim came from the link cache, so its slot
	// revision may be stale.
	cached bool
	// at is the time of the Lookup, on the caller's clock.
	at time.Time
}

// HeldSubject is the subject the claim's response is held on.
func (c *Claim) HeldSubject() string {
	if c.Legacy {
		return schemas.PendingSubject(c.Invitation.Org, c.Invitation.WaveID)
	}
	return schemas.HeldSubject(c.Invitation.Org, c.Invitation.WaveID)
}

// Lookup finds the usable invitation for token at time now. It returns
// ErrTokenUnknown, ErrTokenUsed or ErrTokenExpired, or another error when
// the ledger cannot be reached.
func (l *Ledger) Lookup(ctx context.Context, token string, now time.Time) (*Claim, error) {
	if !wellFormed(token) {
		return nil, ErrTokenUnknown
	}
	hash := TokenHash(token)
	if k, ok := l.links.get(hash, now); ok {
		if !now.Before(k.inv.ExpiresAt) {
			return nil, ErrTokenExpired
		}
		return &Claim{Invitation: k.inv, hash: hash, slotRev: k.slotRev, slots: k.slots, Legacy: k.legacy, cached: true, at: now}, nil
	}
	c, err := l.lookup(ctx, hash, now)
	if err != nil {
		return nil, err
	}
	l.links.put(hash, linkEntry{inv: c.Invitation, legacy: c.Legacy, slots: c.slots, slotRev: c.slotRev}, now)
	return c, nil
}

// Open is Lookup for showing the survey page: a kept link has its slot read
// again (one read), so that a slot used meanwhile, through another link of
// it or on another ingest process, is ErrTokenUsed here too.
func (l *Ledger) Open(ctx context.Context, token string, now time.Time) (*Claim, error) {
	c, err := l.Lookup(ctx, token, now)
	if err != nil || !c.cached {
		return c, err
	}
	st, rev, err := readSlot(ctx, c.slots, c.Invitation.Slot)
	if err != nil {
		return nil, err
	}
	if st.Used {
		l.links.spend(slotOf(c.Invitation), now)
		return nil, ErrTokenUsed
	}
	c.slotRev = rev
	l.links.refresh(c.hash, rev)
	return c, nil
}

// readSlot reads a response slot and its revision.
func readSlot(ctx context.Context, slots jetstream.KeyValue, slot string) (schemas.Slot, uint64, error) {
	se, err := slots.Get(ctx, schemas.SlotKey(slot))
	if err != nil {
		return schemas.Slot{}, 0, fmt.Errorf("ingest: read slot: %w", err)
	}
	var st schemas.Slot
	if err := json.Unmarshal(se.Value(), &st); err != nil {
		return schemas.Slot{}, 0, fmt.Errorf("ingest: corrupt slot: %w", err)
	}
	return st, se.Revision(), nil
}

// lookup is Lookup from the ledger itself: the link's index entry, its
// invitation in the wave's bucket and its slot.
func (l *Ledger) lookup(ctx context.Context, hash string, now time.Time) (*Claim, error) {
	e, err := l.index.Get(ctx, hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrTokenUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: read invitation ledger: %w", err)
	}
	var inv schemas.Invitation
	if err := json.Unmarshal(e.Value(), &inv); err != nil {
		return nil, fmt.Errorf("ingest: corrupt ledger entry: %w", err)
	}
	legacy := inv.Slot != ""
	if !legacy {
		kv, err := l.waveBucket(ctx, schemas.WaveLedgerBucket(inv.Org, inv.WaveID), false)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, ErrTokenUnknown // sealed: the wave's ledger is gone
		}
		if err != nil {
			return nil, err
		}
		we, err := kv.Get(ctx, hash)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, ErrTokenUnknown
		}
		if err != nil {
			return nil, fmt.Errorf("ingest: read invitation ledger: %w", err)
		}
		if err := json.Unmarshal(we.Value(), &inv); err != nil {
			return nil, fmt.Errorf("ingest: corrupt ledger entry: %w", err)
		}
	}
	slots, err := l.slotBucket(ctx, inv.Org, inv.WaveID, legacy)
	if err != nil {
		return nil, err
	}
	st, rev, err := readSlot(ctx, slots, inv.Slot)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Used:
		return nil, ErrTokenUsed
	case !now.Before(inv.ExpiresAt):
		return nil, ErrTokenExpired
	}
	return &Claim{Invitation: inv, hash: hash, slotRev: rev, slots: slots, Legacy: legacy, at: now}, nil
}

// MarkUsed marks the claimed slot used, provided nobody else did since
// Lookup: of any number of concurrent submits of one slot's links, exactly
// one gets past this. It returns ErrTokenUsed to the others.
//
// A claim from the link cache holds the slot's revision as it was read
// then. When the compare-and-set finds another, the slot is read again:
// used means ErrTokenUsed, unused (a failed publish released it since)
// means one more compare-and-set against the revision just read. Any other
// failure of a cached claim drops the link from the cache, so that the next
// attempt reads the ledger afresh (after a seal: the link is unknown).
func (l *Ledger) MarkUsed(ctx context.Context, c *Claim) error {
	l.links.forget(c.hash)
	err := l.casSlot(ctx, c)
	if c.cached && errors.Is(err, ErrTokenUsed) {
		c.cached = false
		st, rev, rerr := readSlot(ctx, c.slots, c.Invitation.Slot)
		if rerr != nil {
			return rerr
		}
		if st.Used {
			l.links.spend(slotOf(c.Invitation), c.at)
			return ErrTokenUsed
		}
		c.slotRev = rev
		err = l.casSlot(ctx, c)
	}
	if err == nil || errors.Is(err, ErrTokenUsed) {
		l.links.spend(slotOf(c.Invitation), c.at)
	}
	return err
}

// casSlot marks c's slot used if it still has c's revision.
func (l *Ledger) casSlot(ctx context.Context, c *Claim) error {
	val, _ := json.Marshal(schemas.Slot{Used: true})
	rev, err := c.slots.Update(ctx, schemas.SlotKey(c.Invitation.Slot), val, c.slotRev)
	if isWrongRevision(err) {
		return ErrTokenUsed
	}
	if err != nil {
		return fmt.Errorf("ingest: mark invitation used: %w", err)
	}
	c.slotRev = rev
	return nil
}

// Release makes a claimed slot usable again after its response could not be
// stored, so the employee can retry.
func (l *Ledger) Release(ctx context.Context, c *Claim) error {
	val, _ := json.Marshal(schemas.Slot{})
	if _, err := c.slots.Update(ctx, schemas.SlotKey(c.Invitation.Slot), val, c.slotRev); err != nil {
		return fmt.Errorf("ingest: release invitation: %w", err)
	}
	return nil
}

// SweepLinks drops the kept links that expired at now or whose wave open
// says no longer takes responses (a closed or sealed one).
func (l *Ledger) SweepLinks(now time.Time, open func(org, wave string) bool) {
	l.links.sweep(now, open)
}

// isWrongRevision reports a compare-and-set conflict; replicated (R>1)
// streams report it with a code of their own.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// forgetWave deletes a sealed wave's own buckets and stream of held
// responses (their files go with them), and purges what the shared
// buckets hold of the wave: the index entries of its links, and the
// invitations and slots written before waves had buckets of their own.
// Afterwards its links are unknown, and nothing says which were used.
func forgetWave(ctx context.Context, js jetstream.JetStream, org, wave string) error {
	for _, name := range []string{schemas.WaveLedgerBucket(org, wave), schemas.WaveInviteeBucket(org, wave), schemas.WaveLiveBucket(org, wave)} {
		if err := js.DeleteKeyValue(ctx, name); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("ingest: delete bucket %s: %w", name, err)
		}
	}
	if err := js.DeleteStream(ctx, schemas.HeldStream(org, wave)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("ingest: delete stream %s: %w", schemas.HeldStream(org, wave), err)
	}
	kv, err := js.KeyValue(ctx, schemas.InvitationBucket)
	if err != nil {
		return fmt.Errorf("ingest: invitation ledger: %w", err)
	}
	// The shared bucket holds every open link of every wave: it is read
	// entry by entry, keeping only this wave's keys, so that a seal's
	// memory does not grow with the rest of the deployment's invitations.
	var keys []string
	err = eachEntry(ctx, kv, ">", func(key string, val []byte) {
		if strings.HasPrefix(key, schemas.SlotKey("")) {
			return
		}
		var inv schemas.Invitation
		if err := json.Unmarshal(val, &inv); err != nil || inv.Org != org || inv.WaveID != wave {
			return
		}
		keys = append(keys, key)
		if inv.Slot != "" {
			keys = append(keys, schemas.SlotKey(inv.Slot))
		}
	})
	if err != nil {
		return fmt.Errorf("ingest: read invitation ledger: %w", err)
	}
	for _, k := range keys {
		if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("ingest: purge ledger entry of wave %s: %w", wave, err)
		}
	}
	return nil
}
