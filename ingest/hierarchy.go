package ingest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
)

// hierarchyProblems checks the tree the roster's manager_id column builds,
// each problem with its line: an employee who is their own manager, a
// reporting cycle (every member named, A -> B -> A and longer), and a
// reporting line with more than schemas.MaxManagerDepth managers above an
// employee (refused, not cut: a cut line would put people in groups their
// roster does not say). Unknown managers are ParseRoster's. rows must have
// unique employee ids.
func hierarchyProblems(rows []RosterRow) []string {
	byID := make(map[string]RosterRow, len(rows))
	for _, r := range rows {
		byID[r.EmployeeID] = r
	}
	var problems []string
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	depth := map[string]int{} // managers above; -1 for a line that runs into a cycle
	for _, start := range rows {
		if state[start.EmployeeID] != unseen {
			continue
		}
		var path []string
		id := start.EmployeeID
		for {
			r, ok := byID[id]
			if !ok || state[id] == done {
				break
			}
			if state[id] == onPath {
				cycle := path[slices.Index(path, id):]
				problems = append(problems, cycleProblems(cycle, byID)...)
				for _, m := range cycle {
					depth[m] = -1
				}
				break
			}
			state[id] = onPath
			path = append(path, id)
			if r.ManagerID == "" || r.ManagerID == id {
				if r.ManagerID == id {
					problems = append(problems, fmt.Sprintf("line %d: manager_id: %q manages themself", r.Line, id))
					depth[id] = -1
				}
				break
			}
			id = r.ManagerID
		}
		// Depths from the top of the path down.
		for i := len(path) - 1; i >= 0; i-- {
			e := path[i]
			state[e] = done
			if _, set := depth[e]; set {
				continue
			}
			m := byID[e].ManagerID
			switch md, known := depth[m]; {
			case m == "" || byID[m].EmployeeID == "":
				depth[e] = 0
			case known && md < 0:
				depth[e] = -1
			default:
				depth[e] = md + 1
			}
		}
	}
	for _, r := range rows {
		if d := depth[r.EmployeeID]; d > schemas.MaxManagerDepth {
			problems = append(problems, fmt.Sprintf("line %d: manager_id: %d managers above %q, more than the %d a reporting line may have",
				r.Line, d, r.EmployeeID, schemas.MaxManagerDepth))
		}
	}
	return problems
}

// cycleProblems names every member of a reporting cycle, one problem per
// member's line, each showing the whole cycle.
func cycleProblems(cycle []string, byID map[string]RosterRow) []string {
	// Start the cycle at its first line, so every member reads it the same.
	first := 0
	for i, id := range cycle {
		if byID[id].Line < byID[cycle[first]].Line {
			first = i
		}
	}
	ordered := append(slices.Clone(cycle[first:]), cycle[:first]...)
	var steps []string
	for _, id := range ordered {
		steps = append(steps, fmt.Sprintf("%q (line %d)", id, byID[id].Line))
	}
	desc := strings.Join(steps, " -> ") + fmt.Sprintf(" -> %q", ordered[0])
	out := make([]string, 0, len(ordered))
	for _, id := range ordered {
		out = append(out, fmt.Sprintf("line %d: manager_id: reporting cycle %s", byID[id].Line, desc))
	}
	return out
}

// reportingLine returns the person ids of the managers above the person of
// employee id id in people (the people bucket, by employee id), top of the
// tree first; nil for someone without a manager. An import leaves no
// cycles or unknown managers; should the bucket hold one anyway, the line
// stops there, and never grows past schemas.MaxManagerDepth.
func reportingLine(people map[string]schemas.Person, id string) []string {
	var up []string
	seen := map[string]bool{id: true}
	for m := people[id].ManagerID; m != "" && !seen[m] && len(up) < schemas.MaxManagerDepth; m = people[m].ManagerID {
		p, ok := people[m]
		if !ok || p.LeftOn != "" || p.PersonID == "" {
			break
		}
		seen[m] = true
		up = append(up, p.PersonID)
	}
	slices.Reverse(up)
	return up
}
