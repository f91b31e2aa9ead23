package ingest

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// The link cache keeps what Lookup read of a link that is still usable:
// its invitation and the revision its response slot had. An employee opens
// the survey page (a Lookup) and posts the answers a minute later; with the
// page's reads kept, the post makes no key-value read at all: it claims the
// slot by compare-and-set against the kept revision and publishes.
//
// Nothing kept here can let a stale entry record a response it should not:
//   - An invitation never changes while its wave is open (its cohort, slot
//     and expiry are written once, at issue); the expiry and the wave's own
//     state (the catalog) are checked on every request as before.
//   - The slot's revision may be stale: another link of the same slot (a
//     reminder's) may have used it, or a failed publish released it. The
//     claim is a compare-and-set, so a stale revision only fails it; the
//     slot is then read once and the claim retried against what it holds
//     (MarkUsed), exactly as an uncached Lookup would have found it.
//   - A sealed wave's buckets are gone, so a claim against them fails and
//     the entry is dropped; the catalog has refused the wave before that.
//
// What it holds is what the wave's ledger holds (a link's hash, its cohort
// and slot) and only for links not yet used: an entry goes when its link
// records its response, when its wave is no longer open (sweep), and
// linkCacheTTL after it was read. It never holds anything of a response.
type linkCache struct {
	mu      sync.Mutex
	entries map[string]linkEntry // by token hash
	max     int
}

// linkEntry is a kept Lookup.
type linkEntry struct {
	inv     schemas.Invitation
	legacy  bool
	slots   jetstream.KeyValue
	slotRev uint64
	until   time.Time
}

const (
	// linkCacheTTL is how long a read link is kept: long enough for an
	// employee to answer after opening the page.
	linkCacheTTL = 30 * time.Minute
	// defaultLinkCacheSize bounds the entries kept (a few hundred bytes
	// each). When it is full new links are not kept, and their posts read
	// the ledger as before.
	defaultLinkCacheSize = 50_000
)

func newLinkCache(max int) *linkCache {
	return &linkCache{entries: map[string]linkEntry{}, max: max}
}

// get returns the kept Lookup of hash, if it is still fresh at now.
func (c *linkCache) get(hash string, now time.Time) (linkEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if ok && !now.Before(e.until) {
		delete(c.entries, hash)
		return linkEntry{}, false
	}
	return e, ok
}

// put keeps a Lookup of hash read at now, unless the cache is full of
// fresh entries.
func (c *linkCache) put(hash string, e linkEntry, now time.Time) {
	e.until = now.Add(linkCacheTTL)
	if e.inv.ExpiresAt.Before(e.until) {
		e.until = e.inv.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.max {
		c.dropLocked(func(e linkEntry) bool { return !now.Before(e.until) })
		if len(c.entries) >= c.max {
			return
		}
	}
	c.entries[hash] = e
}

// forget drops hash's entry.
func (c *linkCache) forget(hash string) {
	c.mu.Lock()
	delete(c.entries, hash)
	c.mu.Unlock()
}

// sweep drops the entries expired at now and those of waves that open
// says no longer take responses.
func (c *linkCache) sweep(now time.Time, open func(org, wave string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(func(e linkEntry) bool {
		return !now.Before(e.until) || !open(e.inv.Org, e.inv.WaveID)
	})
}

func (c *linkCache) dropLocked(drop func(linkEntry) bool) {
	for h, e := range c.entries {
		if drop(e) {
			delete(c.entries, h)
		}
	}
}

// len is the number of entries kept.
func (c *linkCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
