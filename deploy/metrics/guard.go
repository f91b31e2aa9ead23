package metrics

import "time"

// GuardDecided records one decision of the anonymity guard: how long it
// took and how many sets it served, suppressed, or refused because the
// decision could not be made.
func (m *Metrics) GuardDecided(took time.Duration, served, suppressed, refused int) {
	if m == nil {
		return
	}
	m.guardDuration.Observe(took.Seconds())
	m.guardDecisions.WithLabelValues("served").Add(float64(served))
	m.guardDecisions.WithLabelValues("suppressed").Add(float64(suppressed))
	m.guardDecisions.WithLabelValues("refused").Add(float64(refused))
}
