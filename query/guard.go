package query

// Guard decides which cells of a result may be served. It sees only counts
// of distinct respondents, never answers, and it errs on the side of hiding.
//
// Rules (each worked through in the README):
//  1. A cell is shown only if at least K distinct respondents stand behind
//     it.
//  2. A cell nested in a parent (a question in its wave, a dimension in its
//     group) is shown only if it equals its parent or differs from it by at
//     least K respondents; otherwise parent minus cell singles out fewer than
//     K people.
//  3. Complementary suppression: in a set of cells that partitions a shown
//     total (groups of a group-by), the hidden cells together must hold at
//     least K respondents, or the total minus the shown cells recovers them.
//     The smallest shown cells are hidden until that holds.
type Guard struct {
	// K is the minimum number of distinct respondents behind any number.
	K int
}

// DefaultThreshold is K unless configured otherwise.
const DefaultThreshold = 5

// Visible applies rules 1 and 2 to a cell of n respondents within a parent
// of parent respondents.
func (g Guard) Visible(n, parent int) bool {
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
func (g Guard) Complement(ns []int, hidden []bool) []bool {
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
