package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// What this file does: the manager role's view of the roster's tree. A
// manager's token is bound to one person (TokenIssued.PersonID); their
// reach is that person and everyone below them in the roster's tree as
// the people bucket has it now. A manager may ask for the organisation
// overall (no filter), or for exactly one filter, manager= or reports_to=,
// naming someone in their reach; nothing finer, no group_by (parseSlice).

// Directory reads the roster's people (the people bucket, read-only) by
// person id, keeping each organisation's for a few seconds: a roster
// import is seen within directoryTTL.
type Directory struct {
	js jetstream.JetStream
	mu sync.Mutex
	by map[string]directoryEntry
}

type directoryEntry struct {
	people map[string]schemas.Person // by person id
	read   time.Time
}

const directoryTTL = 5 * time.Second

// NewDirectory reads people from js's people bucket.
func NewDirectory(js jetstream.JetStream) *Directory {
	return &Directory{js: js, by: map[string]directoryEntry{}}
}

// People returns org's people by person id, leavers included.
func (d *Directory) People(ctx context.Context, org string) (map[string]schemas.Person, error) {
	d.mu.Lock()
	e, ok := d.by[org]
	d.mu.Unlock()
	if ok && time.Since(e.read) < directoryTTL {
		return e.people, nil
	}
	kv, err := d.js.KeyValue(ctx, schemas.PeopleBucket)
	if err != nil {
		return nil, fmt.Errorf("query: people bucket: %w", err)
	}
	w, err := kv.WatchFiltered(ctx, []string{org + ".>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("query: people bucket: %w", err)
	}
	defer w.Stop()
	people := map[string]schemas.Person{}
	for {
		select {
		case u := <-w.Updates():
			if u == nil { // the initial values are all in
				d.mu.Lock()
				d.by[org] = directoryEntry{people: people, read: time.Now()}
				d.mu.Unlock()
				return people, nil
			}
			var p schemas.Person
			if err := json.Unmarshal(u.Value(), &p); err != nil || p.PersonID == "" {
				continue
			}
			people[p.PersonID] = p
		case <-ctx.Done():
			return nil, fmt.Errorf("query: people bucket: %w", ctx.Err())
		}
	}
}

// Reach returns root and everyone below root in the tree of people (by
// person id, each pointing up through ManagerPersonID); leavers count no
// more. Cycles (refused at import) cannot loop it.
func Reach(people map[string]schemas.Person, root string) map[string]bool {
	below := map[string][]string{}
	for id, p := range people {
		if p.LeftOn == "" && p.ManagerPersonID != "" {
			below[p.ManagerPersonID] = append(below[p.ManagerPersonID], id)
		}
	}
	out := map[string]bool{root: true}
	for queue := []string{root}; len(queue) > 0; queue = queue[1:] {
		for _, id := range below[queue[0]] {
			if !out[id] {
				out[id] = true
				queue = append(queue, id)
			}
		}
	}
	return out
}

// SetDirectory gives the server the roster's people, for managers' reach
// and the managers list; without it a manager reaches nobody.
func (s *Server) SetDirectory(d *Directory) { s.directory = d }

// WithReach returns p with its Reach filled in for a manager (a copy; p
// itself is not changed), and p as it is for the other roles.
func (s *Server) WithReach(ctx context.Context, p *Principal) (*Principal, error) {
	if p == nil || p.Role != schemas.RoleManager {
		return p, nil
	}
	q := *p
	q.Reach = map[string]bool{}
	if s.directory == nil || p.PersonID == "" {
		return &q, nil
	}
	people, err := s.directory.People(ctx, p.Org)
	if err != nil {
		s.log.Error("roster unavailable for a manager's reach", "org", p.Org, "err", err)
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the roster cannot be read now, so a manager's team is not known; try again shortly")
	}
	// A manager who has left is refused everything: a token or a sign-in
	// issued before does not outlive them. A person the roster does not
	// know reaches nobody.
	me, ok := people[p.PersonID]
	if ok && me.LeftOn != "" {
		return nil, schemas.Errorf(http.StatusForbidden, "forbidden", "this manager's access belongs to someone who has left the organisation")
	}
	if ok {
		q.Reach = Reach(people, p.PersonID)
	}
	return &q, nil
}

// mayManagerSlice applies the manager role's rule to a parsed slice: no
// group_by, at most one filter, manager= or reports_to= someone in reach.
func mayManagerSlice(p *Principal, filter []Clause, groupBy string) error {
	if p.Role != schemas.RoleManager {
		return nil
	}
	refuse := func(why string) error {
		return schemas.Errorf(http.StatusForbidden, "forbidden", "%s; a manager sees the organisation overall and their own team: manager=<person id> (direct reports) or reports_to=<person id> (everyone below), for themself or a manager below them", why)
	}
	switch {
	case groupBy != "":
		return refuse("a manager's results have no group_by")
	case len(filter) > 1:
		return refuse("a manager's results take one filter")
	case len(filter) == 1 && !p.Reach[filter[0].Values[0]]:
		return refuse("that person is not in your team")
	}
	return nil
}

// MayFilter applies the manager role's rule to a filter a page builds
// (the API's go through parseSlice): nil for other roles.
func MayFilter(p *Principal, filter []Clause) error { return mayManagerSlice(p, filter, "") }

// TeamFilter is a manager's own team: everyone below them.
func TeamFilter(p *Principal) []Clause {
	return []Clause{{Attr: ReportsTo, Values: []string{p.PersonID}}}
}

// Person returns the roster's person of a person id (ok false if there is
// none, or no roster is reachable from here).
func (s *Server) Person(ctx context.Context, org, personID string) (schemas.Person, bool, error) {
	if s.directory == nil {
		return schemas.Person{}, false, nil
	}
	people, err := s.directory.People(ctx, org)
	if err != nil {
		return schemas.Person{}, false, err
	}
	p, ok := people[personID]
	return p, ok, nil
}

// mayManagerComments refuses a manager the organisation-wide comment
// lists: a manager reads (and replies to) their own team's comments only,
// a list filtered to their reach (parseSlice has checked whom it names).
func mayManagerComments(p *Principal, filter []Clause) error {
	if p != nil && p.Role == schemas.RoleManager && len(filter) == 0 {
		return schemas.Errorf(http.StatusForbidden, "forbidden", "a manager reads their own team's comments: add manager=<person id> or reports_to=<person id> for themself or a manager below them")
	}
	return nil
}

// Manager is one manager of the roster, as GET /v1/orgs/{org}/managers
// lists them: whoever a current employee reports to.
type Manager struct {
	PersonID   string `json:"person_id"`
	EmployeeID string `json:"employee_id"`
	Name       string `json:"name"`
	// ManagerPersonID is their own manager's person id ("" at the top).
	ManagerPersonID string `json:"manager_person_id,omitempty"`
	// DirectReports counts the current employees reporting to them (on the
	// roster: not the respondents of any wave).
	DirectReports int `json:"direct_reports"`
}

// managersHandler lists the roster's managers: every one for analysts and
// admins, those in their reach for a manager; refused to leaders, who see
// no manager groups.
func (s *Server) managersHandler(c *fiber.Ctx) error {
	p := principalOf(c)
	if p.Role == schemas.RoleLeader {
		return schemas.Errorf(http.StatusForbidden, "forbidden", "the leader role sees organisation-wide and department results, not manager groups")
	}
	if err := onlyParams(c); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	out, err := s.Managers(ctx, p)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"org": p.Org, "managers": out})
}

// Managers lists the roster's managers p may name, sorted by employee id:
// every one for analysts and admins, those in their reach for a manager
// (p with its Reach, from WithReach). Returns 503 when the roster cannot
// be read.
func (s *Server) Managers(ctx context.Context, p *Principal) ([]Manager, error) {
	if s.directory == nil {
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the roster is not reachable from this query service")
	}
	people, err := s.directory.People(ctx, p.Org)
	if err != nil {
		s.log.Error("roster unavailable", "org", p.Org, "err", err)
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the roster cannot be read now; try again shortly")
	}
	reports := map[string]int{}
	for _, q := range people {
		if q.LeftOn == "" && q.ManagerPersonID != "" {
			reports[q.ManagerPersonID]++
		}
	}
	out := []Manager{}
	for id, n := range reports {
		m, ok := people[id]
		if !ok || m.LeftOn != "" || (p.Role == schemas.RoleManager && !p.Reach[id]) {
			continue
		}
		out = append(out, Manager{PersonID: id, EmployeeID: m.EmployeeID, Name: m.Name, ManagerPersonID: m.ManagerPersonID, DirectReports: n})
	}
	slices.SortFunc(out, func(a, b Manager) int { return strings.Compare(a.EmployeeID, b.EmployeeID) })
	return out, nil
}
