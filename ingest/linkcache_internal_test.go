package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestLinkCacheFull: a cache full of fresh entries keeps no new link, and
// once entries have expired a new link is kept again (a full cache looks
// for expired entries at most once a second, not on every put).
func TestLinkCacheFull(t *testing.T) {
	now := time.Now()
	c := newLinkCache(100)
	entry := func(i int, expires time.Time) linkEntry {
		return linkEntry{inv: schemas.Invitation{Org: "acme", WaveID: "w1", Slot: fmt.Sprint("s", i), ExpiresAt: expires}}
	}
	for i := range 100 {
		c.put(fmt.Sprint("h", i), entry(i, now.Add(time.Minute)), now)
	}
	c.put("new", entry(1000, now.Add(time.Hour)), now)
	if _, ok := c.get("new", now); ok || c.len() != 100 {
		t.Fatalf("a full cache kept a new link (%d entries)", c.len())
	}
	later := now.Add(2 * time.Minute) // the first 100 have expired
	c.put("new", entry(1000, now.Add(time.Hour)), later)
	if _, ok := c.get("new", later); !ok || c.len() != 1 {
		t.Fatalf("after the entries expired, the new link is not kept alone (%d entries)", c.len())
	}
}

// TestLinkCacheSpent: once a slot is spent its links are gone and none is
// kept again, until the sweep forgets the slot with its closed wave.
func TestLinkCacheSpent(t *testing.T) {
	now := time.Now()
	c := newLinkCache(100)
	e := linkEntry{inv: schemas.Invitation{Org: "acme", WaveID: "w1", Slot: "s1", ExpiresAt: now.Add(time.Hour)}}
	c.put("a", e, now)
	c.put("b", e, now)
	c.spend(slotOf(e.inv), now)
	if c.len() != 0 {
		t.Fatalf("%d links of a spent slot kept", c.len())
	}
	c.put("a", e, now)
	if c.len() != 0 {
		t.Fatal("a link of a spent slot was kept again")
	}
	c.sweep(now, func(org, wave string) bool { return false })
	if len(c.spent) != 0 {
		t.Fatalf("%d spent slots remembered after their wave closed", len(c.spent))
	}
}
