// Package guard decides which results of the query API may be served. It
// does no I/O: the caller reads the response types of the waves a result
// touches and the record of what was served before, and writes the record
// back (Run does that through a RecordStore, with a compare-and-set).
//
// # The invariant
//
// A wave's respondents fall into response types: every respondent of one
// wave and one cohort (department, team, location, tenure band) is the same
// to every result. Each served result stands on sets of response types, one
// set per cell (the scope, each group of a group-by). The partition that all
// the sets ever served for an organisation induce on a wave's types — two
// types share an atom when every served set takes both or neither — is the
// record. The invariant:
//
//	every atom of every wave's partition holds 0 or at least k respondents,
//	k being that wave's threshold.
//
// A cell is served only if, after its set is added, the invariant still
// holds; otherwise it is suppressed and the partition stays as it was.
// Every served number is a symmetric function of the response records of a
// served set (a mean, a share, a distribution, a count, a correlation, a
// list of comments in an order of their own), and every served set is a
// union of atoms. So exchanging the whole response records of two members
// of one atom changes no served number: whatever reasoning an attacker
// applies to everything served — linear algebra, integrality, bounds,
// integer programming — it cannot tell the members of an atom apart, and
// an atom holds at least k of them. docs/anonymity.md gives the argument in
// full and what it does not cover.
//
// Comment lists get a partition of their own, with the comment threshold:
// comments are never part of a number, so only comment lists subtract from
// comment lists.
package guard

import (
	"fmt"
	"slices"
)

// Wave is what a decision needs to know of one wave: its threshold and its
// response types with their respondents. Types are cohort keys, distinct;
// sealed waves never change, so the caller may compute this once.
type Wave struct {
	ID    string
	K     int
	Types []string
	N     []int
}

// Cell is one set a result would serve numbers (or, with Comments, a
// comment list) on. Parts holds, per wave id, the indices into that wave's
// Types that the set takes. Ref names the cell for the caller; several
// cells may share a ref.
type Cell struct {
	Ref      string
	Parts    map[string][]int
	Comments bool
}

// Request is the cells of one or more results, in the order they should
// be tried: a cell tried earlier is kept over a later one that conflicts
// with it.
type Request struct {
	Cells []Cell
	// CommentK is the least threshold of comment lists: a comment cell
	// needs max(CommentK, the wave's k) in every atom.
	CommentK int
}

// Decision is the outcome: which refs may be served, and the record with
// the served cells added.
type Decision struct {
	// Served holds the refs of the cells that may be served; a ref is
	// served only if every cell with that ref is.
	Served map[string]bool
	Record Record
	// Changed reports whether Record differs from the record decided on:
	// only then must it be written back.
	Changed bool
}

// Record is the partition of every wave's response types that the sets
// served so far induce, for numbers and for comment lists.
type Record struct {
	Numbers  map[string]Partition `json:"numbers,omitempty"`
	Comments map[string]Partition `json:"comments,omitempty"`
}

// Partition is one wave's partition: Atoms[i] is the atom of Types[i].
// Atoms are numbered in order of first appearance, so equal partitions
// are equal values.
type Partition struct {
	Types []string `json:"types"`
	Atoms []int    `json:"atoms"`
}

// part names one partition: numbers or comments of one wave.
type part struct {
	wave     string
	comments bool
}

// Decide applies the invariant to a request against a record. waves must
// hold every wave the request's cells take.
func Decide(req Request, rec Record, waves map[string]Wave) Decision {
	// The working partitions, aligned with waves[id].Types.
	work := map[part][]int{}
	labels := func(p part) []int {
		if l, ok := work[p]; ok {
			return l
		}
		recorded := rec.Numbers[p.wave]
		if p.comments {
			recorded = rec.Comments[p.wave]
		}
		l := align(recorded, waves[p.wave].Types)
		work[p] = l
		return l
	}
	threshold := func(w Wave, comments bool) int {
		if comments {
			return max(req.CommentK, w.K)
		}
		return w.K
	}
	// Cells of one ref stand or fall together: a ref is tried on copies of
	// the partitions and its refinements kept only if all its cells pass.
	var refs []string
	byRef := map[string][]Cell{}
	for _, c := range req.Cells {
		if _, ok := byRef[c.Ref]; !ok {
			refs = append(refs, c.Ref)
		}
		byRef[c.Ref] = append(byRef[c.Ref], c)
	}
	served := map[string]bool{}
	changed := map[part]bool{}
	for _, ref := range refs {
		trial := map[part][]int{}
		ok := true
		for _, c := range byRef[ref] {
			n, need := 0, 0
			for id, idx := range c.Parts {
				w := waves[id]
				need = max(need, threshold(w, c.Comments))
				for _, i := range idx {
					n += w.N[i]
				}
			}
			if n < need || n == 0 {
				ok = false
				break
			}
			for id, idx := range c.Parts {
				w, p := waves[id], part{id, c.Comments}
				cur, seen := trial[p]
				if !seen {
					cur = labels(p)
				}
				next, fine := refine(cur, idx, w.N, threshold(w, c.Comments))
				if !fine {
					ok = false
					break
				}
				trial[p] = next
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		served[ref] = true
		for p, next := range trial {
			if atomCount(next) != atomCount(work[p]) {
				changed[p] = true
			}
			work[p] = next
		}
	}
	out := Record{Numbers: rec.Numbers, Comments: rec.Comments}
	for p := range changed {
		target := &out.Numbers
		if p.comments {
			target = &out.Comments
		}
		updated := make(map[string]Partition, len(*target)+1)
		for id, old := range *target {
			updated[id] = old
		}
		updated[p.wave] = Partition{Types: slices.Clone(waves[p.wave].Types), Atoms: canonical(work[p])}
		*target = updated
	}
	return Decision{Served: served, Record: out, Changed: len(changed) > 0}
}

// align maps a recorded partition onto a wave's types. A type the record
// does not know (which a sealed wave never has) goes into one atom of the
// unknown types, apart from every recorded atom.
func align(p Partition, types []string) []int {
	at := make(map[string]int, len(p.Types))
	for i, t := range p.Types {
		if i < len(p.Atoms) {
			at[t] = p.Atoms[i]
		}
	}
	unknown := 0
	for _, a := range p.Atoms {
		unknown = max(unknown, a+1)
	}
	out := make([]int, len(types))
	for i, t := range types {
		a, ok := at[t]
		if !ok {
			a = unknown
		}
		out[i] = a
	}
	if len(p.Types) == 0 {
		clear(out) // nothing served yet: the wave is one atom
	}
	return out
}

// refine splits every atom by membership in the set idx, and reports
// whether every piece that the set touches holds 0 or at least k
// respondents: for an atom A and the set S, both A∩S and A∖S when S meets
// A. Atoms the set does not meet are not looked at again.
func refine(labels, idx []int, n []int, k int) ([]int, bool) {
	in := make([]bool, len(labels))
	for _, i := range idx {
		in[i] = true
	}
	inside, outside := map[int]int{}, map[int]int{}
	met := map[int]bool{}
	for i, a := range labels {
		if in[i] {
			inside[a] += n[i]
			met[a] = true
		} else {
			outside[a] += n[i]
		}
	}
	ok := func(m int) bool { return m == 0 || m >= k }
	for a := range met {
		if !ok(inside[a]) || !ok(outside[a]) {
			return nil, false
		}
	}
	// New labels: (old atom, inside) pairs.
	type piece struct {
		atom int
		in   bool
	}
	ids := map[piece]int{}
	out := make([]int, len(labels))
	for i, a := range labels {
		p := piece{a, in[i] && met[a]}
		id, seen := ids[p]
		if !seen {
			id = len(ids)
			ids[p] = id
		}
		out[i] = id
	}
	return out, true
}

// canonical renumbers atoms in order of first appearance.
func canonical(labels []int) []int {
	ids := map[int]int{}
	out := make([]int, len(labels))
	for i, a := range labels {
		id, ok := ids[a]
		if !ok {
			id = len(ids)
			ids[a] = id
		}
		out[i] = id
	}
	return out
}

func atomCount(labels []int) int {
	seen := map[int]bool{}
	for _, a := range labels {
		seen[a] = true
	}
	return len(seen)
}

// Violations lists the atoms of a record that break the invariant for the
// given waves: none, unless the record was written by something else than
// Decide.
func Violations(rec Record, waves map[string]Wave) []string {
	var out []string
	for _, kind := range []struct {
		parts map[string]Partition
		name  string
	}{{rec.Numbers, "numbers"}, {rec.Comments, "comments"}} {
		for id, p := range kind.parts {
			w, ok := waves[id]
			if !ok {
				continue
			}
			sum := map[int]int{}
			for i, a := range align(p, w.Types) {
				sum[a] += w.N[i]
			}
			for a, n := range sum {
				if n > 0 && n < w.K {
					out = append(out, fmt.Sprintf("%s of wave %s: atom %d holds %d respondents, fewer than %d", kind.name, id, a, n, w.K))
				}
			}
		}
	}
	return out
}
