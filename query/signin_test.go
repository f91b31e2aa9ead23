package query

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

const testPerson = "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01"

// TestSignIns: a link is stored as its hash only, works once (of many
// concurrent uses exactly one wins), and is refused once it has expired;
// malformed and unknown links are unknown.
func TestSignIns(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := NewSignIns(js, clock)

	t.Run("OK", func(t *testing.T) {
		token, expires, err := s.Mint(ctx, "acme", "w1", testPerson)
		if err != nil {
			t.Fatal(err)
		}
		if !expires.Equal(now.Add(schemas.SignInLifetime)) {
			t.Errorf("expires %v", expires)
		}
		kv, err := js.KeyValue(ctx, schemas.SignInBucket)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(k, token) || strings.Contains(string(e.Value()), token) {
				t.Fatalf("the token itself is stored under %s", k)
			}
		}
		// Checks, as a mail scanner's GETs make them, use nothing.
		for i := range 3 {
			si, err := s.Check(ctx, token)
			if err != nil || si.Org != "acme" || si.WaveID != "w1" || si.PersonID != testPerson || si.UsedAt != nil {
				t.Fatalf("check %d: %+v %v", i, si, err)
			}
		}
		si, err := s.Redeem(ctx, token)
		if err != nil || si.Org != "acme" || si.WaveID != "w1" || si.PersonID != testPerson {
			t.Fatalf("redeem: %+v %v", si, err)
		}
		if _, err := s.Redeem(ctx, token); !errors.Is(err, ErrSignInUsed) {
			t.Fatalf("second use: %v, want ErrSignInUsed", err)
		}
		if _, err := s.Check(ctx, token); !errors.Is(err, ErrSignInUsed) {
			t.Fatalf("check after use: %v, want ErrSignInUsed", err)
		}
	})

	t.Run("ErrSignInUsed concurrently", func(t *testing.T) {
		token, _, err := s.Mint(ctx, "acme", "w1", testPerson)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = s.Redeem(ctx, token) }()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrSignInUsed):
				t.Errorf("concurrent use: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d concurrent uses signed in, want 1", won)
		}
	})

	t.Run("ErrSignInExpired", func(t *testing.T) {
		token, _, err := s.Mint(ctx, "acme", "w1", testPerson)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(schemas.SignInLifetime)
		mu.Unlock()
		if _, err := s.Check(ctx, token); !errors.Is(err, ErrSignInExpired) {
			t.Fatalf("check of an expired link: %v, want ErrSignInExpired", err)
		}
		if _, err := s.Redeem(ctx, token); !errors.Is(err, ErrSignInExpired) {
			t.Fatalf("expired link: %v, want ErrSignInExpired", err)
		}
	})

	t.Run("ErrSignInUnknown", func(t *testing.T) {
		for _, token := range []string{"", "short", strings.Repeat("A", 43), strings.Repeat("!", 43), strings.Repeat("A", 44)} {
			if _, err := s.Check(ctx, token); !errors.Is(err, ErrSignInUnknown) {
				t.Errorf("check %q: %v, want ErrSignInUnknown", token, err)
			}
			if _, err := s.Redeem(ctx, token); !errors.Is(err, ErrSignInUnknown) {
				t.Errorf("%q: %v, want ErrSignInUnknown", token, err)
			}
		}
	})

	t.Run("bucket expires entries", func(t *testing.T) {
		kv, err := js.KeyValue(ctx, schemas.SignInBucket)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != schemas.SignInBucketTTL || st.TTL() <= schemas.SignInLifetime {
			t.Fatalf("bucket TTL %v, want %v (past the links' lifetime)", st.TTL(), schemas.SignInBucketTTL)
		}
	})
}
