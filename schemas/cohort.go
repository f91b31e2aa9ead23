package schemas

import (
	"slices"
	"strings"

	"github.com/google/uuid"
)

// MaxManagerDepth is the most managers a reporting line may have above one
// person. A roster whose tree is deeper is refused at import (with the line
// numbers of the people too deep), so every stored line fits the ladder's
// cut levels (GeneraliseLadder) and the query's filters stay bounded.
const MaxManagerDepth = 12

// CohortKey is a Cohort in comparable form, for maps and equality: the
// reporting line joined by commas (person ids are UUIDs, which have none).
type CohortKey struct {
	Department, Team, Location, TenureBand string
	Managers                               string
	Manager                                string
}

// Key returns c's comparable form; a nil and an empty line give the same.
func (c Cohort) Key() CohortKey {
	return CohortKey{Department: c.Department, Team: c.Team, Location: c.Location, TenureBand: c.TenureBand,
		Managers: strings.Join(c.Managers, ","), Manager: c.Manager}
}

// Cohort returns the cohort k is the key of (an empty line as nil).
func (k CohortKey) Cohort() Cohort {
	c := Cohort{Department: k.Department, Team: k.Team, Location: k.Location, TenureBand: k.TenureBand, Manager: k.Manager}
	if k.Managers != "" {
		c.Managers = strings.Split(k.Managers, ",")
	}
	return c
}

// Equal reports whether c and d are the same cohort.
func (c Cohort) Equal(d Cohort) bool { return c.Key() == d.Key() }

// WithLine returns c with the reporting line line (top first) and its last
// element as the direct manager; c itself is not changed.
func (c Cohort) WithLine(line []string) Cohort {
	c.Managers, c.Manager = slices.Clone(line), ""
	if len(line) > 0 {
		c.Manager = line[len(line)-1]
	} else {
		c.Managers = nil
	}
	return c
}

// ValidPersonID reports whether s has the form of a person id (a UUID in
// its canonical lower-case form), as the query's manager filters need.
func ValidPersonID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// ValidLine reports whether c's reporting line is well formed: at most
// MaxManagerDepth person ids, none twice, and Manager either empty or the
// line's last element.
func (c Cohort) ValidLine() bool {
	if len(c.Managers) > MaxManagerDepth {
		return false
	}
	seen := map[string]bool{}
	for _, m := range c.Managers {
		if !ValidPersonID(m) || seen[m] {
			return false
		}
		seen[m] = true
	}
	return c.Manager == "" || (len(c.Managers) > 0 && c.Manager == c.Managers[len(c.Managers)-1])
}
