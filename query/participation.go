package query

import (
	"context"
	"io"
	"strconv"
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

// ParticipationResult is the result of GET .../waves/{wave}/participation.
type ParticipationResult struct {
	Org       string            `json:"org"`
	WaveID    string            `json:"wave_id"`
	Filter    map[string]string `json:"filter,omitempty"`
	Threshold int               `json:"threshold"`
	GroupBy   string            `json:"group_by,omitempty"`
	Overall   Participation     `json:"overall"`
	Groups    []Participation   `json:"groups,omitempty"`
}

// participationHandler serves invited and responded counts of a released
// wave, organisation-wide (or within filters) and per group. Responded
// counts are the same cells as the scores' respondents and pass the same
// guard.
func (s *Server) participationHandler(c *fiber.Ctx) error {
	org := c.Params("org")
	filter, groupBy, err := sliceRequest(c, "group_by", "format")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	w, err := s.ReleasedWave(ctx, org, c.Params("wave"))
	if err != nil {
		return err
	}
	out, err := s.Participation(ctx, org, w, filter, groupBy)
	if err != nil {
		return err
	}
	return send(c, out)
}

// FileName names the result's CSV download.
func (r ParticipationResult) FileName() string {
	return r.Org + "-" + NewScope([]WaveInfo{{ID: r.WaveID}}, clauses(r.Filter), 0).String() + "-participation.csv"
}

// WriteCSV writes the result as CSV, the overall row first.
func (r ParticipationResult) WriteCSV(w io.Writer) error {
	t := newCSV(w, "wave_id", "group_by", "group", "suppressed", "invited", "responded", "rate")
	for _, p := range append([]Participation{r.Overall}, r.Groups...) {
		t.row(r.WaveID, r.GroupBy, p.Value, strconv.FormatBool(p.Suppressed), inum(p.Invited), inum(p.Responded), fnum(p.Rate))
	}
	return t.close()
}

// Participation computes the invited and responded counts of a released
// wave, within filters and per group. Responded counts are the same cells
// as the scores' respondents and pass the same guard.
func (s *Server) Participation(ctx context.Context, org string, w WaveInfo, filter []Clause, groupBy string) (ParticipationResult, error) {
	sc := NewScope([]WaveInfo{w}, filter, s.guard.K)
	res, err := s.Scores(ctx, org, sc, groupBy)
	if err != nil {
		return ParticipationResult{}, err
	}
	// The invitations were read with the scores' data (and are cached with it).
	data, err := s.scopeDataOf(ctx, org, sc, []string{w.SurveyID}, groupBy)
	if err != nil {
		return ParticipationResult{}, err
	}
	out := ParticipationResult{Org: org, WaveID: w.ID, Filter: res.Filter, Threshold: sc.K, GroupBy: groupBy,
		Overall: participation("", data.invitedTotal(), res.Respondents)}
	for _, g := range res.Groups {
		out.Groups = append(out.Groups, participation(g.Value, data.invited[g.Value], g.Respondents))
	}
	return out, nil
}
