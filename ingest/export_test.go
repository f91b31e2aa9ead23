package ingest

import "time"

// FillInFlightForTest takes every in-flight place of s, as that many slow
// submissions would, and returns the function that frees them.
func (s *Server) FillInFlightForTest() (free func()) {
	n := cap(s.inflight)
	for range n {
		s.inflight <- struct{}{}
	}
	return func() {
		for range n {
			<-s.inflight
		}
	}
}

func init() {
	// The tests watch the link cache's sweep without waiting ten seconds.
	linkSweepEvery = 50 * time.Millisecond
}

// KeptLinksForTest is the number of links the ledger's link cache holds.
func (l *Ledger) KeptLinksForTest() int { return l.links.len() }
