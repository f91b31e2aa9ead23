package guard

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Benchmarks of the decision alone, in memory (no record store): an
// organisation of 16 waves of about 700 response types each (3,000
// employees; departments, teams, locations and tenure bands of skewed
// sizes; 85% answer each wave), k = 5, and a record grown by 100, 1,000
// and 10,000 random results. `make bench` (cmd/trustbench) measures the
// same through Run against the JetStream record store.

type benchType [4]string

type benchUniverse struct {
	waves map[string]Wave
	ids   []string
	attrs map[string][]benchType
}

func newBenchUniverse() benchUniverse {
	rng := rand.New(rand.NewPCG(41, 42))
	pick := func(weights ...float64) int {
		total := 0.0
		for _, w := range weights {
			total += w
		}
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return i
			}
			x -= w
		}
		return len(weights) - 1
	}
	staff := make([]benchType, 3000)
	for i := range staff {
		d := pick(30, 18, 12, 9, 7, 6, 5, 4, 3, 3, 2, 1)
		staff[i] = benchType{fmt.Sprint("d", d), fmt.Sprint("d", d, "t", pick(35, 25, 16, 11, 8, 5)),
			fmt.Sprint("l", pick(40, 25, 15, 12, 8)), fmt.Sprint("b", pick(18, 27, 33, 22))}
	}
	u := benchUniverse{waves: map[string]Wave{}, attrs: map[string][]benchType{}}
	for w := range 16 {
		id := fmt.Sprintf("w%02d", w+1)
		counts := map[benchType]int{}
		for _, p := range staff {
			if rng.Float64() < 0.85 {
				counts[p]++
			}
		}
		var types []benchType
		for t := range counts {
			types = append(types, t)
		}
		slices.SortFunc(types, func(a, b benchType) int {
			return strings.Compare(strings.Join(a[:], "\x1f"), strings.Join(b[:], "\x1f"))
		})
		wave := Wave{ID: id, K: 5}
		for _, t := range types {
			wave.Types = append(wave.Types, strings.Join(t[:], "\x1f"))
			wave.N = append(wave.N, counts[t])
		}
		u.ids, u.waves[id], u.attrs[id] = append(u.ids, id), wave, types
	}
	return u
}

// cell takes the types of waves that match pred (attribute index → value).
func (u benchUniverse) cell(ref string, waves []string, pred map[int]string) Cell {
	c := Cell{Ref: ref, Parts: map[string][]int{}}
	for _, id := range waves {
		idx := []int{}
		for i, t := range u.attrs[id] {
			ok := true
			for a, v := range pred {
				ok = ok && t[a] == v
			}
			if ok {
				idx = append(idx, i)
			}
		}
		c.Parts[id] = idx
	}
	return c
}

// request is one random result: one wave or a pooled period of 2-4, an
// optional filter of 1-3 attributes, and usually a group-by.
func (u benchUniverse) request(rng *rand.Rand) Request {
	span := 1
	if rng.IntN(3) == 0 {
		span = 2 + rng.IntN(3)
	}
	first := rng.IntN(len(u.ids) - span + 1)
	waves := u.ids[first : first+span]
	filter := map[int]string{}
	if rng.IntN(2) == 0 {
		t := u.attrs[waves[0]][rng.IntN(len(u.attrs[waves[0]]))]
		for _, a := range rng.Perm(4)[:1+rng.IntN(3)] {
			filter[a] = t[a]
		}
	}
	req := Request{CommentK: 5}
	if len(filter) > 0 {
		req.Cells = append(req.Cells, u.cell("overall", waves, nil))
	}
	req.Cells = append(req.Cells, u.cell("scope", waves, filter))
	var free []int
	for a := range 4 {
		if _, ok := filter[a]; !ok {
			free = append(free, a)
		}
	}
	if len(free) > 0 && rng.IntN(10) < 7 {
		by := free[rng.IntN(len(free))]
		values := map[string]bool{}
		for _, id := range waves {
			for _, t := range u.attrs[id] {
				values[t[by]] = true
			}
		}
		for _, v := range slices.Sorted(maps.Keys(values)) {
			pred := map[int]string{by: v}
			for a, fv := range filter {
				pred[a] = fv
			}
			req.Cells = append(req.Cells, u.cell("group|"+v, waves, pred))
		}
	}
	return req
}

// grown serves n random results and returns the record, the requests and
// a supply of further requests that would refine it.
func grown(u benchUniverse, n int) (Record, []Request, []Request) {
	rng := rand.New(rand.NewPCG(51, uint64(n)))
	var rec Record
	var issued []Request
	for range n {
		req := u.request(rng)
		rec = Decide(req, rec, u.waves).Record
		issued = append(issued, req)
	}
	var refining []Request
	for tries := 0; len(refining) < 50 && tries < 5000; tries++ {
		if req := u.request(rng); Decide(req, rec, u.waves).Changed {
			refining = append(refining, req)
		}
	}
	return rec, issued, refining
}

func BenchmarkDecide(b *testing.B) {
	u := newBenchUniverse()
	for _, n := range []int{100, 1000, 10000} {
		rec, issued, refining := grown(u, n)
		b.Run(fmt.Sprintf("warm/results=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				Decide(issued[i%len(issued)], rec, u.waves)
				i++
			}
		})
		if len(refining) > 0 {
			b.Run(fmt.Sprintf("refining/results=%d", n), func(b *testing.B) {
				i := 0
				for b.Loop() {
					Decide(refining[i%len(refining)], rec, u.waves)
					i++
				}
			})
		}
		data, err := rec.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("marshal/results=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := rec.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "record-bytes")
		})
		b.Run(fmt.Sprintf("unmarshal/results=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Unmarshal(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
