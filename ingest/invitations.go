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

// Ledger is the invitation ledger: a key-value bucket of token hash →
// schemas.Invitation and slot → used, with compare-and-set updates.
type Ledger struct {
	kv jetstream.KeyValue
}

// OpenLedger opens the ledger bucket (deploy.EnsureStreams creates it).
func OpenLedger(ctx context.Context, js jetstream.JetStream) (*Ledger, error) {
	kv, err := js.KeyValue(ctx, schemas.InvitationBucket)
	if err != nil {
		return nil, fmt.Errorf("ingest: invitation ledger: %w", err)
	}
	return &Ledger{kv: kv}, nil
}

// Issue stores a new invitation with a new response slot and returns its
// token and slot.
func (l *Ledger) Issue(ctx context.Context, inv schemas.Invitation) (token, slot string, err error) {
	inv.Slot = uuid.NewString()
	val, _ := json.Marshal(schemas.Slot{})
	if _, err := l.kv.Create(ctx, schemas.SlotKey(inv.Slot), val); err != nil {
		return "", "", fmt.Errorf("ingest: store invitation: %w", err)
	}
	token, err = l.IssueForSlot(ctx, inv)
	return token, inv.Slot, err
}

// IssueForSlot stores another link for an existing slot (a reminder's).
// Either link records the slot's one response.
func (l *Ledger) IssueForSlot(ctx context.Context, inv schemas.Invitation) (string, error) {
	token := NewToken()
	val, err := json.Marshal(inv)
	if err != nil {
		return "", err
	}
	if _, err := l.kv.Create(ctx, TokenHash(token), val); err != nil {
		return "", fmt.Errorf("ingest: store invitation: %w", err)
	}
	return token, nil
}

// SlotUsed reports whether a slot has recorded its response.
func (l *Ledger) SlotUsed(ctx context.Context, slot string) (bool, error) {
	e, err := l.kv.Get(ctx, schemas.SlotKey(slot))
	if err != nil {
		return false, fmt.Errorf("ingest: read slot: %w", err)
	}
	var st schemas.Slot
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return false, fmt.Errorf("ingest: corrupt slot: %w", err)
	}
	return st.Used, nil
}

// Claim is an invitation looked up for use, not yet marked used.
type Claim struct {
	Invitation schemas.Invitation
	slotRev    uint64
}

// Lookup finds the usable invitation for token at time now. It returns
// ErrTokenUnknown, ErrTokenUsed or ErrTokenExpired, or another error when
// the ledger cannot be reached.
func (l *Ledger) Lookup(ctx context.Context, token string, now time.Time) (*Claim, error) {
	if !wellFormed(token) {
		return nil, ErrTokenUnknown
	}
	e, err := l.kv.Get(ctx, TokenHash(token))
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
	se, err := l.kv.Get(ctx, schemas.SlotKey(inv.Slot))
	if err != nil {
		return nil, fmt.Errorf("ingest: read slot: %w", err)
	}
	var st schemas.Slot
	if err := json.Unmarshal(se.Value(), &st); err != nil {
		return nil, fmt.Errorf("ingest: corrupt slot: %w", err)
	}
	switch {
	case st.Used:
		return nil, ErrTokenUsed
	case !now.Before(inv.ExpiresAt):
		return nil, ErrTokenExpired
	}
	return &Claim{Invitation: inv, slotRev: se.Revision()}, nil
}

// MarkUsed marks the claimed slot used, provided nobody else did since
// Lookup: of any number of concurrent submits of one slot's links, exactly
// one gets past this. It returns ErrTokenUsed to the others.
func (l *Ledger) MarkUsed(ctx context.Context, c *Claim) error {
	val, _ := json.Marshal(schemas.Slot{Used: true})
	rev, err := l.kv.Update(ctx, schemas.SlotKey(c.Invitation.Slot), val, c.slotRev)
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
	if _, err := l.kv.Update(ctx, schemas.SlotKey(c.Invitation.Slot), val, c.slotRev); err != nil {
		return fmt.Errorf("ingest: release invitation: %w", err)
	}
	return nil
}

// isWrongRevision reports a compare-and-set conflict; replicated (R>1)
// streams report it with a code of their own.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// forgetLedger purges a sealed wave's invitations and their slots from the
// ledger, so that no "used" mark of the wave is left: afterwards its links
// are unknown, and nothing says which were used.
func forgetLedger(ctx context.Context, js jetstream.JetStream, org, wave string) error {
	kv, err := js.KeyValue(ctx, schemas.InvitationBucket)
	if err != nil {
		return fmt.Errorf("ingest: invitation ledger: %w", err)
	}
	entries, err := readBucket(ctx, kv, ">")
	if err != nil {
		return fmt.Errorf("ingest: read invitation ledger: %w", err)
	}
	for key, val := range entries {
		if strings.HasPrefix(key, schemas.SlotKey("")) {
			continue
		}
		var inv schemas.Invitation
		if err := json.Unmarshal(val, &inv); err != nil || inv.Org != org || inv.WaveID != wave {
			continue
		}
		for _, k := range []string{schemas.SlotKey(inv.Slot), key} {
			if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("ingest: purge ledger entry of wave %s: %w", wave, err)
			}
		}
	}
	return nil
}
