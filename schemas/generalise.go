package schemas

// The values a generalised cohort attribute takes. A cohort stored with a
// response (in the held stream, the event stream and ClickHouse) is shared by
// at least k invitees of its wave: when too few invitees share a person's
// own cohort, it is generalised step by step along GeneraliseLadder until
// enough do (ingest decides it when the invitations are issued; see
// docs/anonymity.md, "Cohorts in the stores").
const (
	// TenureUnder2y and Tenure2yPlus are the merged tenure bands: <1y and
	// 1-2y, and 2-5y and 5y+.
	TenureUnder2y = "<2y"
	Tenure2yPlus  = "2y+"
	// AnyTenure replaces the tenure band.
	AnyTenure = "any tenure"
	// OtherLocations replaces the location.
	OtherLocations = "other locations"
	// OtherTeams replaces the team: the person counts for their
	// department only.
	OtherTeams = "other teams"
	// OtherDepartments replaces the department.
	OtherDepartments = "other departments"
)

// GeneraliseLadder lists the levels of generalisation, from none to
// everything: each level generalises one more attribute of a cohort, and
// keeps what the levels before it generalised.
//
//	0      the cohort as it is
//	1      tenure band merged: <2y, 2y+ (other bands stay as they are)
//	2      tenure: any tenure
//	3      location: other locations
//	4      direct manager dropped (Manager ""): the person still counts for
//	       every "all reports" group of their line
//	5..16  the reporting line cut to its top d managers, for
//	       d = MaxManagerDepth-1 down to 0
//	17     team: other teams
//	18     department: other departments
//
// The order keeps longest what managers act on: department, then team,
// then the reporting line from its top; a cut line is always a prefix of
// the person's own, so a generalised person still counts, correctly, for
// the groups of the managers they keep.
var GeneraliseLadder = ladder()

func ladder() []func(Cohort) Cohort {
	steps := []func(Cohort) Cohort{
		func(c Cohort) Cohort { return c },
		func(c Cohort) Cohort { c.TenureBand = mergedTenure(c.TenureBand); return c },
		func(c Cohort) Cohort { c.TenureBand = AnyTenure; return c },
		func(c Cohort) Cohort { c.Location = OtherLocations; return c },
		func(c Cohort) Cohort { c.Manager = ""; return c },
	}
	for d := MaxManagerDepth - 1; d >= 0; d-- {
		steps = append(steps, func(c Cohort) Cohort {
			if len(c.Managers) > d {
				c.Managers = c.Managers[:d:d]
			}
			if len(c.Managers) == 0 {
				c.Managers = nil
			}
			return c
		})
	}
	steps = append(steps,
		func(c Cohort) Cohort { c.Team = OtherTeams; return c },
		func(Cohort) Cohort {
			return Cohort{Department: OtherDepartments, Team: OtherTeams, Location: OtherLocations, TenureBand: AnyTenure}
		})
	// Level i applies steps 1..i, so that it keeps what the levels before
	// it generalised (level 1's merge is a no-op after level 2's).
	out := make([]func(Cohort) Cohort, len(steps))
	for i := range steps {
		out[i] = func(c Cohort) Cohort {
			for _, s := range steps[:i+1] {
				c = s(c)
			}
			return c
		}
	}
	return out
}

// mergedTenure maps the four tenure bands ingest computes to two; other
// values (from a cohorts file) stay as they are.
func mergedTenure(band string) string {
	switch band {
	case "<1y", "1-2y":
		return TenureUnder2y
	case "2-5y", "5y+":
		return Tenure2yPlus
	}
	return band
}
