package projector

import (
	"math/rand/v2"
	"testing"
)

// TestSeenIDs checks the filter against an exact set (a map), across the
// growth to further segments: no hash added may be answered "no", and the
// false "maybe" on hashes never added stays near the designed rate.
func TestSeenIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newSeenIDs(1000) // below bloomMinIDs: grows past its first segment
	added := map[uint64]bool{}
	for range 5 * bloomMinIDs {
		h := rng.Uint64()
		added[h] = true
		s.add(h)
	}
	if len(s.segs) < 3 {
		t.Fatalf("%d segments after %d ids; the test did not exercise growth", len(s.segs), len(added))
	}
	for h := range added {
		if !s.mayHold(h) {
			t.Fatalf("hash %d added but not held", h)
		}
	}
	if s.size() != len(added) {
		t.Fatalf("size %d, added %d", s.size(), len(added))
	}
	const trials = 200_000
	fp := 0
	for range trials {
		h := rng.Uint64()
		if !added[h] && s.mayHold(h) {
			fp++
		}
	}
	// Each segment's rate is about 2% when full; the segments together
	// stay well under 10%.
	if rate := float64(fp) / trials; rate > 0.10 {
		t.Fatalf("false-positive rate %.3f over %d segments", rate, len(s.segs))
	} else {
		t.Logf("false-positive rate %.4f over %d segments", rate, len(s.segs))
	}
	if off := (&seenIDs{off: true}); !off.mayHold(rng.Uint64()) {
		t.Fatal("a disabled filter must hold every id")
	}
}
