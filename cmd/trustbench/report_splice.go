package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// A stage run alone (--only seal, --only ingest) writes its sections and
// its rows of the goals table into the existing report and leaves the
// rest as it was, from the run named at the report's top.

// stageRun is when, on what commit and under what load a stage ran.
type stageRun struct {
	date, commit          string
	loadBefore, loadAfter string
	alone                 bool // run by --only
}

// stamp records when and on what commit the stage ran, and the load.
func (s *stageRun) stamp(loadBefore string) {
	s.date, s.commit = time.Now().UTC().Format("2006-01-02"), commit()
	s.loadBefore, s.loadAfter = loadBefore, loadAverage()
}

// aloneLine says, for a stage run alone, how and when it was measured.
func (s stageRun) aloneLine(p func(string, ...any), only, setup string) {
	if !s.alone {
		return
	}
	p("Measured by `bin/trustbench --only %s` on %s, commit %s, on the machine above%s (load average %s before the stage, %s after); the rest of this file is from the run named at its top.", only, s.date, s.commit, setup, s.loadBefore, s.loadAfter)
	p("")
}

// part is one section of the report and its rows of the goals table.
type part struct {
	heading    string // the section's heading line, "## 9. Seal"
	goalPrefix string // how its goal rows begin, "| seal of "
	section    func(p func(string, ...any))
	goals      func(p func(string, ...any))
}

// splice writes parts into the existing report at path: each section
// replaces the one under its heading (or, if there is none, goes before
// the notes) and its goal rows replace the rows that begin with its
// goalPrefix (or, if there are none, end the goals table), marked as run
// alone. Everything else stays as it was.
func splice(path, only string, run stageRun, parts []part) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--only %s writes its sections into an existing report: %w", only, err)
	}
	mark := fmt.Sprintf(" (`--only %s`, %s, commit %s) |", only, run.date, run.commit)
	sections, goals := make([]string, len(parts)), make([]string, len(parts))
	for i, pt := range parts {
		var sec, g strings.Builder
		pt.section(func(format string, args ...any) { fmt.Fprintf(&sec, format+"\n", args...) })
		pt.goals(func(format string, args ...any) {
			fmt.Fprintf(&g, strings.Replace(format, " |", mark, 1)+"\n", args...)
		})
		sections[i], goals[i] = sec.String(), g.String()
	}
	placedSection, placedGoals := make([]bool, len(parts)), make([]bool, len(parts))
	var out []string
	in := -1 // the part whose old section is being skipped
	inGoals := false
	for _, l := range strings.SplitAfter(string(old), "\n") {
		if strings.HasPrefix(l, "## ") {
			in = -1
			for i, pt := range parts {
				if strings.HasPrefix(l, pt.heading) {
					in = i
				}
			}
			if in >= 0 {
				out = append(out, sections[in])
				placedSection[in] = true
				continue
			}
			if strings.HasPrefix(l, "## Notes") {
				for i := range parts {
					if !placedSection[i] {
						out = append(out, sections[i])
						placedSection[i] = true
					}
				}
			}
		}
		if in >= 0 {
			continue
		}
		if strings.HasPrefix(l, "## Goals") {
			inGoals = true
		}
		if inGoals {
			goalRow := false
			for i, pt := range parts {
				if strings.HasPrefix(l, pt.goalPrefix) {
					goalRow = true
					if !placedGoals[i] {
						out = append(out, goals[i])
						placedGoals[i] = true
					}
				}
			}
			if goalRow {
				continue
			}
			if strings.TrimSpace(l) == "" && len(out) > 0 && strings.HasPrefix(out[len(out)-1], "|") {
				for i := range parts {
					if !placedGoals[i] {
						out = append(out, goals[i])
						placedGoals[i] = true
					}
				}
				inGoals = false
			}
		}
		out = append(out, l)
	}
	for i := range parts {
		if !placedSection[i] {
			out = append(out, "\n", sections[i])
		}
	}
	return os.WriteFile(path, []byte(strings.Join(out, "")), 0o644)
}
