package query

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// SignIns are managers' single-use sign-in links, in the sign-in bucket:
// the token's SHA-256 only, never the token, with the manager it signs in.
type SignIns struct {
	js  jetstream.JetStream
	now func() time.Time
}

// NewSignIns returns the sign-in links stored in JetStream's sign-in
// bucket (deploy.EnsureStreams creates it).
func NewSignIns(js jetstream.JetStream, now func() time.Time) *SignIns {
	return &SignIns{js: js, now: now}
}

// The refusals of Redeem; each is a *schemas.Error with its page's message.
var (
	ErrSignInUnknown = schemas.Errorf(http.StatusNotFound, "signin_unknown",
		"This sign-in link does not exist. Check that you opened the whole link from your email.")
	ErrSignInUsed = schemas.Errorf(http.StatusGone, "signin_used",
		"This sign-in link was used already: each link works once. Ask an admin of your organisation for a manager token to sign in again.")
	ErrSignInExpired = schemas.Errorf(http.StatusGone, "signin_expired",
		"This sign-in link has expired. Ask an admin of your organisation for a manager token to sign in.")
)

func (s *SignIns) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, schemas.SignInBucket)
	if err != nil {
		return nil, fmt.Errorf("query: sign-in bucket: %w", err)
	}
	return kv, nil
}

// Mint stores a new sign-in link for a manager and returns its token (32
// random bytes, base64url): the only copy, for the email.
func (s *SignIns) Mint(ctx context.Context, org, wave, personID string) (token string, expires time.Time, err error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	expires = s.now().Add(schemas.SignInLifetime).UTC().Truncate(time.Second)
	val, _ := json.Marshal(schemas.SignIn{Org: org, WaveID: wave, PersonID: personID, ExpiresAt: expires})
	if _, err := kv.Create(ctx, schemas.SignInTokenKey(signInHash(token)), val); err != nil {
		return "", time.Time{}, fmt.Errorf("query: store sign-in link: %w", err)
	}
	return token, expires, nil
}

// Check looks a sign-in link up without using it: what a mail scanner's
// or a preview's GET may do as often as it likes. It returns the same
// refusals as Redeem (ErrSignInUnknown, ErrSignInUsed, ErrSignInExpired)
// and nil for a link that would sign in now.
func (s *SignIns) Check(ctx context.Context, token string) (schemas.SignIn, error) {
	_, _, si, err := s.lookup(ctx, token)
	return si, err
}

// Redeem uses a sign-in link, once: it marks the link used with a
// compare-and-set on its revision, so that of two concurrent uses one
// wins. It returns ErrSignInUnknown for a malformed or unknown token,
// ErrSignInUsed for a used one and ErrSignInExpired for an expired one;
// other errors are NATS's, wrapped.
func (s *SignIns) Redeem(ctx context.Context, token string) (schemas.SignIn, error) {
	kv, e, si, err := s.lookup(ctx, token)
	if err != nil {
		return schemas.SignIn{}, err
	}
	now := s.now().UTC()
	si.UsedAt = &now
	val, _ := json.Marshal(si)
	if _, err := kv.Update(ctx, e.Key(), val, e.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return schemas.SignIn{}, ErrSignInUsed // another request used it first
		}
		return schemas.SignIn{}, fmt.Errorf("query: redeem sign-in link: %w", err)
	}
	return si, nil
}

// lookup finds a link that may sign in now, with its bucket entry (for
// the compare-and-set), or the refusal of Check and Redeem.
func (s *SignIns) lookup(ctx context.Context, token string) (jetstream.KeyValue, jetstream.KeyValueEntry, schemas.SignIn, error) {
	if !wellFormedSignIn(token) {
		return nil, nil, schemas.SignIn{}, ErrSignInUnknown
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return nil, nil, schemas.SignIn{}, err
	}
	e, err := kv.Get(ctx, schemas.SignInTokenKey(signInHash(token)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, schemas.SignIn{}, ErrSignInUnknown
	}
	if err != nil {
		return nil, nil, schemas.SignIn{}, fmt.Errorf("query: sign-in link: %w", err)
	}
	var si schemas.SignIn
	if err := json.Unmarshal(e.Value(), &si); err != nil {
		return nil, nil, schemas.SignIn{}, fmt.Errorf("query: sign-in link: %w", err)
	}
	switch {
	case si.UsedAt != nil:
		return nil, nil, schemas.SignIn{}, ErrSignInUsed
	case !s.now().UTC().Before(si.ExpiresAt):
		return nil, nil, schemas.SignIn{}, ErrSignInExpired
	}
	return kv, e, si, nil
}

// signInHash is the hex SHA-256 of a token, its key in the bucket.
func signInHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormedSignIn checks a token's shape before any look-up.
func wellFormedSignIn(token string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == 32 && len(token) == 43
}

// SignInSessionID is the token id a signed-in manager's dashboard session
// carries: not an API token's, so never revoked by token revocation, and
// derived from the link so that the session can be traced to it in logs
// without the link.
func SignInSessionID(token string) string { return "signin-" + signInHash(token)[:16] }

// SetSignIns gives the service the managers' sign-in links; without them
// every link is refused with 503.
func (s *Server) SetSignIns(si *SignIns) { s.signIns = si }

// CheckSignIn looks a manager's sign-in link up without using it
// (SignIns.Check).
func (s *Server) CheckSignIn(ctx context.Context, token string) (schemas.SignIn, error) {
	return s.withSignIns(func(si *SignIns) (schemas.SignIn, error) { return si.Check(ctx, token) })
}

// RedeemSignIn uses a manager's sign-in link once (SignIns.Redeem).
func (s *Server) RedeemSignIn(ctx context.Context, token string) (schemas.SignIn, error) {
	// A manager who has left since the link was sent is refused, and the
	// link is left as it is (WithReach refuses their session anyway).
	si, err := s.CheckSignIn(ctx, token)
	if err != nil {
		return si, err
	}
	if _, err := s.WithReach(ctx, &Principal{Org: si.Org, Role: schemas.RoleManager, PersonID: si.PersonID}); err != nil {
		return schemas.SignIn{}, err
	}
	return s.withSignIns(func(si *SignIns) (schemas.SignIn, error) { return si.Redeem(ctx, token) })
}

// withSignIns runs a look-up of the sign-in links and logs its failures
// other than the refusals (never the token).
func (s *Server) withSignIns(f func(*SignIns) (schemas.SignIn, error)) (schemas.SignIn, error) {
	if s.signIns == nil {
		return schemas.SignIn{}, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "Sign-in links cannot be checked right now; please try again in a minute.")
	}
	si, err := f(s.signIns)
	if err != nil && !errors.Is(err, ErrSignInUnknown) && !errors.Is(err, ErrSignInUsed) && !errors.Is(err, ErrSignInExpired) {
		s.log.Error("sign-in link check failed", "err", err)
	}
	return si, err
}
