package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Solving the attacker's integer program with COIN-OR CBC (the `cbc`
// binary, Debian's coinor-cbc; deploy/scripts/ensure-ilp.sh installs it).
//
// TRUSTPULSE_ILP_DEBUG=1 logs every solve and keeps every LP file under
// test-output/ilp.

// ilpSolution is what one cbc run found.
type ilpSolution struct {
	// status: optimal, infeasible, stopped (time limit; values hold the
	// best solution found, if any), unbounded.
	status string
	obj    float64
	values []int64 // nil without a solution
	// rows and duals (linear relaxations only): the rows written and
	// their dual values.
	rows  []ilpRowRef
	duals []float64
}

type ilpSolver struct {
	t      *testing.T
	dir    string
	label  string
	limit  time.Duration // per solve
	solves int
	spent  time.Duration
	n      int
}

func newILPSolver(t *testing.T, label string) *ilpSolver {
	t.Helper()
	ilpNeedCBC(t)
	return &ilpSolver{t: t, dir: t.TempDir(), label: label, limit: 60 * time.Second}
}

// ilpNeedCBC fails the test at once when cbc is missing.
func ilpNeedCBC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cbc"); err != nil {
		t.Fatal("cbc is not installed; `make test` installs Debian's coinor-cbc (deploy/scripts/ensure-ilp.sh)")
	}
}

// keep copies an LP file to test-output/ilp for inspection and returns
// where.
func (s *ilpSolver) keep(path string) string {
	dir := outputDir(s.t, "ilp")
	dst := filepath.Join(dir, s.label+"-"+filepath.Base(path))
	b, err := os.ReadFile(path)
	if err == nil {
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		s.t.Logf("keeping %s: %v", path, err)
	}
	return dst
}

// solve minimises (or maximises) obj over the program with the numbers of
// the active requests (all when active is nil). An infeasible program is a
// bug in the attacker's model, since the truth satisfies every constraint
// (checked before solving): the test stops with the LP file kept.
func (s *ilpSolver) solve(m *ilpModel, title string, obj []ilpTerm, maximize bool, active func(int) bool) ilpSolution {
	return s.run(m, title, obj, maximize, false, active)
}

// bound solves the linear relaxation: its optimum bounds the integer
// program's (from below when minimising), which is often proof enough and
// much cheaper. It carries no solution.
func (s *ilpSolver) bound(m *ilpModel, title string, obj []ilpTerm, maximize bool, active func(int) bool) ilpSolution {
	return s.run(m, title+" (linear relaxation)", obj, maximize, true, active)
}

func (s *ilpSolver) run(m *ilpModel, title string, obj []ilpTerm, maximize, relaxed bool, active func(int) bool) ilpSolution {
	s.t.Helper()
	return s.runAll(m, []ilpJob{{title, obj, maximize}}, relaxed, active)[0]
}

// ilpJob is one objective to solve for.
type ilpJob struct {
	title    string
	obj      []ilpTerm
	maximize bool
}

// boundAll solves the linear relaxations of several objectives, two cbc
// processes at a time.
func (s *ilpSolver) boundAll(m *ilpModel, jobs []ilpJob) []ilpSolution {
	s.t.Helper()
	for i := range jobs {
		jobs[i].title += " (linear relaxation)"
	}
	return s.runAll(m, jobs, true, nil)
}

// runAll writes an LP file per job, runs cbc on them (two at a time) and
// reads the solutions, stopping the test on any trouble.
func (s *ilpSolver) runAll(m *ilpModel, jobs []ilpJob, relaxed bool, active func(int) bool) []ilpSolution {
	t := s.t
	t.Helper()
	type run struct {
		lp, sol string
		refs    []ilpRowRef
		out     []byte
		err     error
		took    time.Duration
	}
	runs := make([]run, len(jobs))
	for i, j := range jobs {
		s.n++
		base := filepath.Join(s.dir, fmt.Sprintf("p%04d", s.n))
		runs[i].lp, runs[i].sol = base+".lp", base+".sol"
		var err error
		if runs[i].refs, err = m.writeLP(runs[i].lp, j.title, j.obj, j.maximize, relaxed, active); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range runs {
		wg.Add(1)
		go func(r *run) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), s.limit+30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "cbc", r.lp, "-sec", strconv.Itoa(int(s.limit.Seconds())), "-threads", "1",
				"-solve", "-printingOptions", "all", "-solution", r.sol)
			r.out, r.err = cmd.CombinedOutput()
			r.took = time.Since(start)
		}(&runs[i])
	}
	wg.Wait()
	out := make([]ilpSolution, len(jobs))
	for i, r := range runs {
		title := jobs[i].title
		s.solves++
		s.spent += r.took
		if r.err != nil {
			t.Fatalf("cbc on %s (kept at %s): %v\n%s", title, s.keep(r.lp), r.err, tail(string(r.out), 2000))
		}
		sol, perr := parseCBCSolution(r.sol, m, relaxed, len(r.refs))
		sol.rows = r.refs
		if perr != nil {
			t.Fatalf("cbc on %s (kept at %s): %v\n%s", title, s.keep(r.lp), perr, tail(string(r.out), 2000))
		}
		switch sol.status {
		case "infeasible":
			t.Fatalf("the attacker's integer program is infeasible (%s), yet the true answers satisfy it: a bug in the model or its LP file, kept at %s\n%s",
				title, s.keep(r.lp), tail(string(r.out), 1500))
		case "unbounded", "unknown":
			t.Fatalf("cbc: %s on %s (kept at %s)\n%s", sol.status, title, s.keep(r.lp), tail(string(r.out), 1500))
		}
		if os.Getenv("TRUSTPULSE_ILP_DEBUG") != "" {
			t.Logf("cbc %s: %s %g in %v (%s)", filepath.Base(r.lp), sol.status, sol.obj, r.took.Round(time.Millisecond), title)
			s.keep(r.lp)
		}
		if sol.values != nil {
			if bad := m.checkSolution(sol.values, active); bad != "" {
				t.Fatalf("cbc's solution of %s breaks the program (%s); kept at %s", title, bad, s.keep(r.lp))
			}
		}
		out[i] = sol
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// parseCBCSolution reads cbc's solution file: a status line ("Optimal -
// objective value 1.00000000", "Infeasible - ...", "Stopped on time - ...")
// then one line per row and column: index, name, value, reduced cost (a
// leading "**" marks an infeasibility).
func parseCBCSolution(path string, m *ilpModel, relaxed bool, rows int) (ilpSolution, error) {
	f, err := os.Open(path)
	if err != nil {
		return ilpSolution{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		return ilpSolution{}, fmt.Errorf("empty solution file")
	}
	head := strings.TrimSpace(sc.Text())
	var sol ilpSolution
	low := strings.ToLower(head)
	switch {
	case strings.HasPrefix(low, "optimal"):
		sol.status = "optimal"
	case strings.Contains(low, "infeasible"):
		sol.status = "infeasible"
	case strings.Contains(low, "unbounded"):
		sol.status = "unbounded"
	case strings.HasPrefix(low, "stopped"):
		sol.status = "stopped"
	default:
		sol.status = "unknown"
	}
	if i := strings.LastIndex(head, "objective value"); i >= 0 {
		if v, err := strconv.ParseFloat(strings.TrimSpace(head[i+len("objective value"):]), 64); err == nil {
			sol.obj = v
		}
	}
	noSolution := sol.status != "optimal" && (strings.Contains(low, "no integer solution") || sol.status != "stopped")
	if noSolution {
		return sol, nil
	}
	if relaxed { // keep the rows' duals
		sol.duals = make([]float64, rows)
		for sc.Scan() {
			fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "**"))
			if len(fields) < 4 || !strings.HasPrefix(fields[1], "c") {
				continue
			}
			i, err := strconv.Atoi(fields[1][1:])
			if err != nil || i < 0 || i >= rows {
				continue
			}
			if d, err := strconv.ParseFloat(fields[3], 64); err == nil {
				sol.duals[i] = d
			}
		}
		return sol, sc.Err()
	}
	index := map[string]int{}
	for i, name := range m.names {
		index[name] = i
	}
	values := make([]int64, len(m.names))
	seen := 0
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "**"))
		if len(fields) < 3 {
			continue
		}
		v, ok := index[fields[1]]
		if !ok {
			continue // a row
		}
		x, err := strconv.ParseFloat(fields[2], 64)
		if err != nil {
			return sol, fmt.Errorf("solution line %q: %v", sc.Text(), err)
		}
		r := math.Round(x)
		if math.Abs(x-r) > 1e-4 && m.integer[v] {
			return sol, fmt.Errorf("variable %s = %v is not integral", fields[1], x)
		}
		values[v] = int64(r)
		seen++
	}
	if err := sc.Err(); err != nil {
		return sol, err
	}
	if seen == 0 {
		return sol, fmt.Errorf("no variable in the solution file")
	}
	m.fillAux(values) // sums of the integers, exactly
	sol.values = values
	return sol, nil
}

// checkSolution returns a broken constraint of a solution ("" if none): a
// check on the LP writer and the parsing of cbc's answer.
func (m *ilpModel) checkSolution(x []int64, active func(int) bool) string {
	for v, val := range x {
		if val < 0 || val > m.upper[v] {
			return fmt.Sprintf("%s = %d outside [0, %d]", m.names[v], val, m.upper[v])
		}
	}
	for _, row := range m.rows {
		lo, hi, ok := row.effective(active)
		if !ok {
			continue
		}
		if val := row.value(x); val < lo || val > hi {
			return fmt.Sprintf("%s: %d outside [%s, %s]", row.bounds[0].what, val, bnd(lo), bnd(hi))
		}
	}
	return ""
}
