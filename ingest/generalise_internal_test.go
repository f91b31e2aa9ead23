package ingest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// randomRoster draws n people from a small organisation, so that small and
// unique cohorts are common. Half the rosters have a reporting tree
// (randomLines).
func randomRoster(r *rand.Rand, n int) []schemas.Cohort {
	bands := []string{"<1y", "1-2y", "2-5y", "5y+"}
	depts, teams, locs := 1+r.IntN(4), 1+r.IntN(4), 1+r.IntN(3)
	var lines [][]string
	if r.IntN(2) == 0 {
		lines = randomLines(r, n)
	}
	out := make([]schemas.Cohort, n)
	for i := range out {
		d := r.IntN(depts)
		out[i] = schemas.Cohort{
			Department: fmt.Sprintf("d%d", d),
			Team:       fmt.Sprintf("d%d-t%d", d, r.IntN(teams)),
			Location:   fmt.Sprintf("l%d", r.IntN(locs)),
			TenureBand: bands[r.IntN(len(bands))],
		}
		if lines != nil {
			out[i] = out[i].WithLine(lines[i])
		}
	}
	return out
}

// randomLines draws a random reporting forest over n people and returns
// each one's line of managers' person ids, top first: person i reports to
// one of the people before them (often one of the first few, so that
// managers have several reports), or to nobody; no line is longer than
// schemas.MaxManagerDepth.
func randomLines(r *rand.Rand, n int) [][]string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), r.Uint64()&0xffffffffffff)
	}
	lines := make([][]string, n)
	for i := 1; i < n; i++ {
		if r.IntN(6) == 0 {
			continue // a root
		}
		m := r.IntN(min(i, 1+r.IntN(8)))
		if len(lines[m]) == schemas.MaxManagerDepth {
			continue
		}
		lines[i] = append(slices.Clone(lines[m]), ids[m])
	}
	return lines
}

// isLineCut reports whether stored's line is what generalisation may make
// of own's: a prefix of own's line (its top), with the direct manager
// kept only while the whole line is.
func isLineCut(own, stored schemas.Cohort) bool {
	if len(stored.Managers) > len(own.Managers) || !slices.Equal(stored.Managers, own.Managers[:len(stored.Managers)]) {
		return false
	}
	return stored.Manager == "" || (stored.Manager == own.Manager && len(stored.Managers) == len(own.Managers))
}

// generalises reports whether stored is what some level of the ladder
// makes of own.
func generalises(own, stored schemas.Cohort) bool {
	for _, level := range schemas.GeneraliseLadder {
		if level(own).Equal(stored) {
			return true
		}
	}
	return false
}

// TestGeneraliseProperty: for random rosters, half of them with random
// reporting trees, invited in one to three rounds (those held back retried
// with the next), every stored cohort, its reporting line included, is
// shared by at least k invitees, counted plainly over what was stored;
// every stored cohort is a generalisation of the person's own, its line a
// prefix-cut of the person's own line; a first round of k or more people
// places everyone.
func TestGeneraliseProperty(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(11, seed))
	withLine, withManager := 0, 0
	for trial := range 3000 {
		k := schemas.MinThreshold + r.IntN(8)
		people := randomRoster(r, r.IntN(70))
		rounds := 1 + r.IntN(3)
		existing := map[schemas.CohortKey]int{}
		var waiting []schemas.Cohort
		placedAll := 0
		for round := range rounds {
			lo, hi := round*len(people)/rounds, (round+1)*len(people)/rounds
			batch := append(waiting, people[lo:hi]...)
			waiting = nil
			stored, ok := generalise(existing, batch, k)
			if round == 0 && len(batch) >= k && slices.Contains(ok, false) {
				t.Fatalf("trial %d: a first round of %d >= k=%d held some back", trial, len(batch), k)
			}
			for i, c := range batch {
				if !ok[i] {
					waiting = append(waiting, c)
					continue
				}
				if !generalises(c, stored[i]) || !isLineCut(c, stored[i]) || !stored[i].ValidLine() {
					t.Fatalf("trial %d: %+v stored as %+v, not a generalisation of it", trial, c, stored[i])
				}
				existing[stored[i].Key()]++
				placedAll++
			}
		}
		for c, n := range existing {
			if n < k {
				t.Fatalf("trial %d (k=%d, %d people, %d rounds): stored cohort %+v is shared by %d invitees", trial, k, len(people), rounds, c, n)
			}
		}
		if len(people) >= k && rounds == 1 && placedAll != len(people) {
			t.Fatalf("trial %d: placed %d of %d", trial, placedAll, len(people))
		}
		for c := range existing {
			if c.Managers != "" {
				withLine++
			}
			if c.Manager != "" {
				withManager++
			}
		}
	}
	if withLine == 0 || withManager == 0 {
		t.Fatalf("no stored cohort kept a line (%d) or a direct manager (%d): the trees test nothing", withLine, withManager)
	}
}

// TestGeneraliseManagerGroups: a team of five under one manager keeps its
// line and direct manager; two teams of two and three under two managers
// of one head lose their direct managers, then the line's last step, and
// are stored together as the head's reports (all reports, not direct),
// with tenure and location generalised, as the ladder goes.
func TestGeneraliseManagerGroups(t *testing.T) {
	const ceo, head, m1, m2, m3 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
		"00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004", "00000000-0000-4000-8000-000000000005"
	base := schemas.Cohort{Department: "Eng", Team: "core", Location: "Berlin", TenureBand: "2-5y"}
	var people []schemas.Cohort
	for range 5 {
		people = append(people, base.WithLine([]string{ceo, head, m1}))
	}
	for range 2 {
		people = append(people, base.WithLine([]string{ceo, head, m2}))
	}
	for range 3 {
		people = append(people, base.WithLine([]string{ceo, head, m3}))
	}
	stored, ok := generalise(map[schemas.CohortKey]int{}, people, 5)
	if slices.Contains(ok, false) {
		t.Fatalf("held back: %v", ok)
	}
	for i := range 5 {
		if !stored[i].Equal(people[i]) {
			t.Fatalf("a direct report of m1 stored as %+v", stored[i])
		}
	}
	// The levels before the line's keep what they generalised: tenure
	// and location go first.
	want := base
	want.Managers, want.TenureBand, want.Location = []string{ceo, head}, schemas.AnyTenure, schemas.OtherLocations
	for i := 5; i < len(people); i++ {
		if !stored[i].Equal(want) {
			t.Fatalf("person %d (%+v) stored as %+v, want %+v", i, people[i], stored[i], want)
		}
	}
}

// TestGeneraliseDeterministic: the stored cohort of a person depends on
// the audience, not on the order it is listed in.
func TestGeneraliseDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		people := randomRoster(r, 1+r.IntN(60))
		k := schemas.MinThreshold + r.IntN(5)
		stored, ok := generalise(map[schemas.CohortKey]int{}, people, k)
		perm := r.Perm(len(people))
		shuffled := make([]schemas.Cohort, len(people))
		for i, j := range perm {
			shuffled[i] = people[j]
		}
		stored2, ok2 := generalise(map[schemas.CohortKey]int{}, shuffled, k)
		for i, j := range perm {
			if !stored2[i].Equal(stored[j]) || ok2[i] != ok[j] {
				t.Fatalf("person %+v: %+v/%v in one order, %+v/%v in another", people[j], stored[j], ok[j], stored2[i], ok2[i])
			}
		}
	}
}

// TestGeneraliseKeepsLargeCohorts: people whose own cohort k others share
// keep it; a unique one is generalised only as far as it takes.
func TestGeneraliseKeepsLargeCohorts(t *testing.T) {
	sales := schemas.Cohort{Department: "Sales", Team: "East", Location: "Berlin", TenureBand: "1-2y"}
	var people []schemas.Cohort
	for range 5 {
		people = append(people, sales)
	}
	// The only Sales person in Remote, and four others of Sales East with
	// other tenures: together they are a group under "other locations"?
	// No: the four share Berlin and <2y with... see the expectations.
	remote := sales
	remote.Location = "Remote"
	people = append(people, remote)
	for _, band := range []string{"<1y", "<1y", "2-5y", "5y+"} {
		c := sales
		c.TenureBand = band
		people = append(people, c)
	}
	stored, ok := generalise(map[schemas.CohortKey]int{}, people, 5)
	if slices.Contains(ok, false) {
		t.Fatalf("held back: %v", ok)
	}
	for i := range 5 {
		if !stored[i].Equal(sales) {
			t.Fatalf("person %d of the large cohort stored as %+v", i, stored[i])
		}
	}
	// <1y, <1y (Berlin) and Remote 1-2y are 3 at level 1 (<2y); 2-5y and
	// 5y+ are 2 (2y+): none reaches 5 until location goes (level 3):
	// Sales East, other locations, any tenure holds all five.
	want := schemas.Cohort{Department: "Sales", Team: "East", Location: schemas.OtherLocations, TenureBand: schemas.AnyTenure}
	for i := 5; i < len(people); i++ {
		if !stored[i].Equal(want) {
			t.Fatalf("person %d (%+v) stored as %+v, want %+v", i, people[i], stored[i], want)
		}
	}
}

// TestGeneraliseLateJoiner: one person invited after a wave's groups were
// formed cannot join a group that does not generalise their cohort, and
// none of theirs holds k: they are held back, and placed once enough
// others of theirs are invited.
func TestGeneraliseLateJoiner(t *testing.T) {
	a := schemas.Cohort{Department: "Eng", Team: "core", Location: "Berlin", TenureBand: "2-5y"}
	existing := map[schemas.CohortKey]int{a.Key(): 6}
	late := schemas.Cohort{Department: "Eng", Team: "web", Location: "Lisbon", TenureBand: "<1y"}
	if _, ok := generalise(existing, []schemas.Cohort{late}, 5); ok[0] {
		t.Fatal("a late joiner alone was placed")
	}
	batch := []schemas.Cohort{late, late, late, late, late}
	stored, ok := generalise(existing, batch, 5)
	if slices.Contains(ok, false) || !stored[0].Equal(late) {
		t.Fatalf("five late joiners: %+v %v", stored, ok)
	}
}

// TestReleaseCohorts: after an invitation round cut short, cohorts held by
// fewer than k are mapped at the release to ones held by k or more; the
// others are left alone.
func TestReleaseCohorts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		k := schemas.MinThreshold + r.IntN(6)
		counts := map[schemas.CohortKey]int{}
		for _, c := range randomRoster(r, r.IntN(60)) {
			counts[c.Key()]++
		}
		remap := releaseCohorts(counts, k)
		after := map[schemas.CohortKey]int{}
		for ck, n := range counts {
			c := ck.Cohort()
			to, ok := remap[ck]
			if n >= k && ok && !to.Equal(schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](c)) {
				t.Fatalf("cohort %+v of %d >= k=%d remapped to %+v", c, n, k, to)
			}
			if !ok {
				to = c
			} else if !generalises(c, to) {
				t.Fatalf("%+v remapped to %+v", c, to)
			}
			after[to.Key()] += n
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		for c, n := range after {
			if n < k && total >= k {
				t.Fatalf("after the remap %+v is held by %d < k=%d (of %d)", c, n, k, total)
			}
		}
	}
}
