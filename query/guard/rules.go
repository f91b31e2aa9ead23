package guard

// Threshold holds the rules within one result, which the invariant does
// not need but which keep results readable: a cell of fewer than K
// respondents is shown as "not enough responses" rather than recorded and
// refused, and a result's groups hide together. Both only ever hide more.
//
//  1. A cell is shown only if at least K distinct respondents stand behind
//     it.
//  2. A cell nested in a parent (a question in its wave, a dimension in its
//     group) is shown only if it equals its parent or differs from it by at
//     least K respondents.
//  3. Complementary suppression: in a set of cells that partitions a shown
//     total (groups of a group-by), the hidden cells together must hold no
//     respondents or at least K; the smallest shown cells are hidden until
//     that holds.
type Threshold struct {
	// K is the minimum number of distinct respondents behind any number.
	K int
}

// Visible applies rules 1 and 2 to a cell of n respondents within a parent
// of parent respondents.
func (g Threshold) Visible(n, parent int) bool {
	if n < g.K {
		return false
	}
	d := parent - n
	return d == 0 || d >= g.K
}

// Complement applies rule 3 to a partition: ns are the cells' respondent
// counts and hidden their state after rules 1 and 2. It hides further cells,
// smallest first, until the hidden ones hold no respondents or at least K,
// and returns the updated states.
func (g Threshold) Complement(ns []int, hidden []bool) []bool {
	out := append([]bool(nil), hidden...)
	for {
		sum, smallest := 0, -1
		for i, n := range ns {
			if out[i] {
				sum += n
			} else if n > 0 && (smallest < 0 || n < ns[smallest]) {
				smallest = i
			}
		}
		if sum == 0 || sum >= g.K || smallest < 0 {
			return out
		}
		out[smallest] = true
	}
}
