package query

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Participation is a cohort's invited and responded counts. A cohort whose
// respondents the guard hides shows neither count.
type Participation struct {
	Value      string   `json:"value,omitempty"`
	Suppressed bool     `json:"suppressed,omitempty"`
	Invited    *int     `json:"invited,omitempty"`
	Responded  *int     `json:"responded,omitempty"`
	Rate       *float64 `json:"rate,omitempty"`
}

func participation(value string, invited int, responded Count) Participation {
	p := Participation{Value: value}
	if responded.N == nil {
		p.Suppressed = true
		return p
	}
	p.Invited, p.Responded = &invited, responded.N
	if invited > 0 {
		p.Rate = round(float64(*responded.N)/float64(invited), 3)
	}
	return p
}

// participationHandler serves invited and responded counts of a released
// wave, organisation-wide and per group. Responded counts are the same
// cells as the scores' respondents and pass the same guard, the
// differencing rule included.
func (s *Server) participationHandler(c *fiber.Ctx) error {
	org := c.Params("org")
	waveID, groupBy, err := sliceRequest(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	w, err := s.releasedWave(ctx, org, waveID)
	if err != nil {
		return err
	}
	res, err := s.waveScores(ctx, org, w, groupBy)
	if err != nil {
		return err
	}
	out := fiber.Map{"org": org, "wave_id": w.ID, "threshold": s.guard.K, "group_by": groupBy,
		"overall": participation("", res.Invited, res.Respondents)}
	if groupBy != "" {
		invited, err := s.store.InvitedBy(ctx, org, w, groupBy)
		if err != nil {
			return err
		}
		groups := []Participation{}
		for _, g := range res.Groups {
			groups = append(groups, participation(g.Value, invited[g.Value], g.Respondents))
		}
		out["groups"] = groups
	}
	return c.JSON(out)
}
