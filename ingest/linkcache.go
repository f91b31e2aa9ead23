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
// The survey page itself reads the slot again on every view (Ledger.Open),
// one read, so a link whose slot was used meanwhile (through its reminder,
// or on another ingest process) shows "already answered", not the form.
//
// What it holds is what the wave's ledger holds (a link's hash and its
// invitation: cohort, slot, expiry and the team whose plan the page shows),
// plus when the page was read (the entry's age), and only for links whose
// slot this process has not seen used: when a slot records its response,
// every kept link of it goes and none is kept again (a page read racing
// the claim cannot put one back); entries also go when their wave is no
// longer open (sweep) and linkCacheTTL after they were read. A link used
// on another process stays until one of those, or until its page or post
// here finds the slot used. It never holds anything of a response.
type linkCache struct {
	mu      sync.Mutex
	entries map[string]linkEntry        // by token hash
	bySlot  map[slotKey]map[string]bool // the kept links of each slot
	spent   map[slotKey]time.Time       // slots this process claimed, until when it remembers
	max     int
	// scanned is when a full cache last looked for expired entries: at
	// most once a second, so that a full cache costs a new link nothing.
	scanned time.Time
}

// slotKey names a response slot: a wave's slot ids are its own.
type slotKey struct{ org, wave, slot string }

func slotOf(inv schemas.Invitation) slotKey { return slotKey{inv.Org, inv.WaveID, inv.Slot} }

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
	return &linkCache{entries: map[string]linkEntry{}, bySlot: map[slotKey]map[string]bool{}, spent: map[slotKey]time.Time{}, max: max}
}

// get returns the kept Lookup of hash, if it is still fresh at now.
func (c *linkCache) get(hash string, now time.Time) (linkEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if ok && !now.Before(e.until) {
		c.dropLocked(hash)
		return linkEntry{}, false
	}
	return e, ok
}

// put keeps a Lookup of hash read at now, unless its slot was claimed here
// since (a read that raced the claim) or the cache is full of fresh
// entries.
func (c *linkCache) put(hash string, e linkEntry, now time.Time) {
	e.until = now.Add(linkCacheTTL)
	if e.inv.ExpiresAt.Before(e.until) {
		e.until = e.inv.ExpiresAt
	}
	k := slotOf(e.inv)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.spent[k]; ok {
		return
	}
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.max {
		if now.Sub(c.scanned) < time.Second {
			return
		}
		c.scanned = now
		c.sweepLocked(func(e linkEntry) bool { return !now.Before(e.until) })
		if len(c.entries) >= c.max {
			return
		}
	}
	c.entries[hash] = e
	if c.bySlot[k] == nil {
		c.bySlot[k] = map[string]bool{}
	}
	c.bySlot[k][hash] = true
}

// refresh sets the slot revision kept for hash, if it is still kept.
func (c *linkCache) refresh(hash string, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[hash]; ok {
		e.slotRev = rev
		c.entries[hash] = e
	}
}

// forget drops hash's entry.
func (c *linkCache) forget(hash string) {
	c.mu.Lock()
	c.dropLocked(hash)
	c.mu.Unlock()
}

// spend drops every kept link of a slot that recorded its response, and
// keeps no link of it from now on: a page read that raced the claim
// cannot put one back.
func (c *linkCache) spend(k slotKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h := range c.bySlot[k] {
		c.dropLocked(h)
	}
	c.spent[k] = now.Add(linkCacheTTL)
}

// sweep drops the entries expired at now and those of waves that open
// says no longer take responses, and forgets the claimed slots of both.
func (c *linkCache) sweep(now time.Time, open func(org, wave string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(func(e linkEntry) bool {
		return !now.Before(e.until) || !open(e.inv.Org, e.inv.WaveID)
	})
	for k, until := range c.spent {
		if !now.Before(until) || !open(k.org, k.wave) {
			delete(c.spent, k)
		}
	}
}

func (c *linkCache) sweepLocked(drop func(linkEntry) bool) {
	for h, e := range c.entries {
		if drop(e) {
			c.dropLocked(h)
		}
	}
}

func (c *linkCache) dropLocked(hash string) {
	e, ok := c.entries[hash]
	if !ok {
		return
	}
	delete(c.entries, hash)
	k := slotOf(e.inv)
	delete(c.bySlot[k], hash)
	if len(c.bySlot[k]) == 0 {
		delete(c.bySlot, k)
	}
}

// len is the number of entries kept.
func (c *linkCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
