package query

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query/api"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// Server is the query HTTP service.
type Server struct {
	app      *fiber.App
	store    *Store
	guard    Guard
	consumer string
	log      *slog.Logger
	// servedMu serialises the differencing checks and their records.
	servedMu sync.Mutex
	tokens   tokenCache
}

// NewServer builds the query service. threshold is the guard's K; consumer
// names the projector whose checkpoint gates a wave's release.
func NewServer(store *Store, threshold int, consumer string, log *slog.Logger) *Server {
	s := &Server{store: store, guard: Guard{K: threshold}, consumer: consumer, log: log.With("component", "query"),
		tokens: tokenCache{entries: map[string]tokenEntry{}}}
	s.app = fiber.New(fiber.Config{
		AppName:               "trustpulse-query",
		ErrorHandler:          httpproblem.ErrorHandler(log),
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
	})
	s.routes()
	return s
}

// routes is the query API, in one table.
func (s *Server) routes() {
	s.app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	s.app.Get("/openapi.yaml", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "application/yaml")
		return c.Send(api.OpenAPI)
	})
	org := s.app.Group("/v1/orgs/:org", s.authenticate)
	org.Get("/waves", s.listWavesHandler)
	org.Get("/waves/:wave/scores", s.waveScoresHandler)
	org.Get("/waves/:wave/participation", s.participationHandler)
	org.Get("/waves/:wave/drivers", s.driversHandler)
	org.Get("/trends", s.trendsHandler)
	org.Get("/retention", s.retentionHandler)
	s.app.Use(func(c *fiber.Ctx) error {
		return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint")
	})
}

// App is the Fiber app.
func (s *Server) App() *fiber.App { return s.app }

// WaveSummary is one row of GET /v1/orgs/{org}/waves.
type WaveSummary struct {
	WaveID   string    `json:"wave_id"`
	SurveyID string    `json:"survey_id"`
	OpensAt  time.Time `json:"opens_at"`
	ClosesAt time.Time `json:"closes_at"`
	Status   string    `json:"status"` // open or closed
}

func (s *Server) listWavesHandler(c *fiber.Ctx) error {
	org := c.Params("org")
	if !schemas.ValidID(org) {
		return schemas.Errorf(http.StatusBadRequest, "invalid_org", "organisation id is malformed")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	waves, err := s.store.Waves(ctx, org)
	if err != nil {
		return err
	}
	out := make([]WaveSummary, 0, len(waves))
	for _, w := range waves {
		status := "open"
		if w.Closed() {
			status = "closed"
		}
		out = append(out, WaveSummary{WaveID: w.ID, SurveyID: w.SurveyID, OpensAt: w.OpensAt, ClosesAt: w.ClosesAt, Status: status})
	}
	return c.JSON(fiber.Map{"org": org, "waves": out})
}

func (s *Server) waveScoresHandler(c *fiber.Ctx) error {
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
	if c.Query("format") == "csv" || c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%s-scores.csv"`, org, w.ID))
		return res.WriteCSV(c.Response().BodyWriter())
	}
	return c.JSON(res)
}

// sliceRequest reads a wave result's request: the wave id, the group-by
// attribute, and whether the caller's role may slice by it.
func sliceRequest(c *fiber.Ctx) (waveID, groupBy string, err error) {
	waveID, groupBy = c.Params("wave"), c.Query("group_by")
	if !schemas.ValidID(waveID) {
		return "", "", schemas.Errorf(http.StatusBadRequest, "invalid_id", "wave id is malformed")
	}
	if _, ok := GroupColumns[groupBy]; groupBy != "" && !ok {
		return "", "", schemas.Errorf(http.StatusBadRequest, "invalid_group_by", "group_by must be one of department, team, location, tenure_band")
	}
	return waveID, groupBy, mayGroupBy(principalOf(c), groupBy)
}

// releasedWave returns a wave whose scores may be served: closed, sealed
// (every response released by the mixer), and projected up to its seal.
func (s *Server) releasedWave(ctx context.Context, org, waveID string) (WaveInfo, error) {
	waves, err := s.store.Waves(ctx, org)
	if err != nil {
		return WaveInfo{}, err
	}
	for _, w := range waves {
		if w.ID != waveID {
			continue
		}
		if !w.Closed() {
			return WaveInfo{}, schemas.Errorf(http.StatusConflict, "wave_open",
				"wave %s is still open; its scores are released once it closes", waveID)
		}
		cp, err := s.store.Checkpoint(ctx, s.consumer)
		if err != nil {
			return WaveInfo{}, err
		}
		if w.SealSeq == 0 || cp < w.SealSeq {
			return WaveInfo{}, schemas.Errorf(http.StatusServiceUnavailable, "results_pending",
				"wave %s closed moments ago; its results are being prepared, try again shortly", waveID)
		}
		return w, nil
	}
	return WaveInfo{}, schemas.Errorf(http.StatusNotFound, "wave_not_found", "wave %s not found", waveID)
}

// waveScores computes a released wave's result under every rule of the
// guard, the differencing rule across results included, and records the
// cells it serves.
func (s *Server) waveScores(ctx context.Context, org string, w WaveInfo, groupBy string) (WaveScores, error) {
	totals, err := s.store.GroupRespondents(ctx, org, w, "")
	if err != nil {
		return WaveScores{}, err
	}
	total := totals[""]
	invited, err := s.store.Invited(ctx, org, w)
	if err != nil {
		return WaveScores{}, err
	}
	order, texts, err := s.store.Questions(ctx, org, w.SurveyID)
	if err != nil {
		return WaveScores{}, err
	}
	dims, err := s.store.DimensionCells(ctx, org, w, "")
	if err != nil {
		return WaveScores{}, err
	}
	qs, err := s.store.QuestionCells(ctx, org, w)
	if err != nil {
		return WaveScores{}, err
	}
	var groupN map[string]int
	var groupCells []Cell
	if groupBy != "" && total >= s.guard.K {
		if groupN, err = s.store.GroupRespondents(ctx, org, w, groupBy); err != nil {
			return WaveScores{}, err
		}
		if groupCells, err = s.store.DimensionCells(ctx, org, w, groupBy); err != nil {
			return WaveScores{}, err
		}
	}
	compute := func(forced map[string]bool) WaveScores {
		res := WaveScores{Org: org, WaveID: w.ID, SurveyID: w.SurveyID, Threshold: s.guard.K, Invited: invited, GroupBy: groupBy}
		res.Respondents, res.Dimensions, res.Questions = guardWave(s.guard, total, slices.Clone(dims), slices.Clone(qs), texts, order, forced)
		if groupN != nil {
			res.Groups = guardGroups(s.guard, total, groupBy, groupN, groupCells, forced)
		}
		return res
	}
	// One decision at a time: two requests checked against the same record
	// could each pass and together break the rule.
	s.servedMu.Lock()
	defer s.servedMu.Unlock()
	forced := map[string]bool{}
	for range 10 {
		res := compute(forced)
		cells := res.servedCells()
		bad, derived, err := s.differencingViolations(ctx, org, w, cells)
		if err != nil {
			return WaveScores{}, err
		}
		if len(bad) == 0 {
			// The derived cells are recorded too: later results are
			// checked against what this one gives away by subtraction.
			if err := s.store.recordServed(ctx, org, w.ID, append(cells, derived...)); err != nil {
				return WaveScores{}, err
			}
			return res, nil
		}
		for id := range bad {
			forced[id] = true
		}
	}
	return WaveScores{}, schemas.Errorf(http.StatusConflict, "differencing", "this result would reveal a group smaller than %d when set against results served before", s.guard.K)
}
