package query

import "github.com/trustpulse/trustpulse/query/guard"

// Guard is the rules within one result (package guard holds them and the
// invariant across results).
type Guard = guard.Threshold

// DefaultThreshold is K unless configured otherwise.
const DefaultThreshold = 5
