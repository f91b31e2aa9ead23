package ingest

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
