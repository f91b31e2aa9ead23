package query

import (
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestMayPlan: analysts and admins plan for any team, a manager for their
// own team only, every other role for none.
func TestMayPlan(t *testing.T) {
	const me, other = "4b8f5c1e-2a3d-4e6f-9a1b-7c2d3e4f5a01", "4b8f5c1e-2a3d-4e6f-9a1b-7c2d3e4f5a02"
	for name, tc := range map[string]struct {
		p       *Principal
		manager string
		ok      bool
	}{
		"OKAnalyst":         {&Principal{Role: schemas.RoleAnalyst}, other, true},
		"OKAdmin":           {&Principal{Role: schemas.RoleAdmin}, other, true},
		"OKOwnTeam":         {&Principal{Role: schemas.RoleManager, PersonID: me}, me, true},
		"ErrOtherTeam":      {&Principal{Role: schemas.RoleManager, PersonID: me}, other, false},
		"ErrUnboundManager": {&Principal{Role: schemas.RoleManager}, "", false},
		"ErrLeader":         {&Principal{Role: schemas.RoleLeader}, other, false},
		"ErrLeaderAsPerson": {&Principal{Role: schemas.RoleLeader, PersonID: me}, me, false},
		"ErrNoPrincipal":    {nil, me, false},
		"ErrUnknownRole":    {&Principal{Role: "owner", PersonID: me}, me, false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := mayPlan(tc.p, tc.manager); (err == nil) != tc.ok {
				t.Errorf("mayPlan: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
