package query

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/query/api"
	"github.com/trustpulse/trustpulse/query/guard"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// Server is the query HTTP service.
type Server struct {
	app      *fiber.App
	store    *Store
	guard    Guard
	consumer string
	// partitions is the event stream's partition count (SetPartitions).
	partitions int
	log        *slog.Logger
	// records is the guard's record of what was served, shared by every
	// replica (SetRecordStore).
	records guard.RecordStore
	tokens  tokenCache
	// live reads open waves' participation; nil without NATS.
	live LiveCounts
	// publisher stores replies and answers on the event stream
	// (SetPublisher); nil refuses them.
	publisher Publisher
	// signIns are managers' emailed sign-in links (SetSignIns); nil
	// refuses them.
	signIns *SignIns
	// directory reads the roster's people, for managers (SetDirectory).
	directory *Directory
	// plans keeps the current action plans (SetPlans); nil refuses them.
	plans PlanStore
	// replies maps reply hashes to their comments (replyindex.go).
	replies replyIndex
	// finish adds the not-found handler after every route.
	finish sync.Once

	// Caches of what released waves determine (cache.go).
	waveList *memo[wavesEntry]
	// refreshing holds the organisations whose wave list one request is
	// refreshing (wavesAndCheckpoint).
	refreshMu  sync.Mutex
	refreshing map[string]bool
	scopeData  *memo[scopeData]
	types      *memo[waveTypes]
	// driverResults holds driver impact per released wave.
	driverResults *memo[DriversResult]

	// Limiter, when set, limits each client's failed authentications (401)
	// of the API and the dashboards' sign-in. Set it before serving.
	Limiter *httpproblem.Limiter
	// Metrics, when set, counts requests and the guard's decisions. Set it
	// before serving.
	Metrics *metrics.Metrics
	// ready is SetReadiness's extra check of /readyz, or nil.
	ready func(context.Context) error

	// weakened serves every cell of at least K respondents without the
	// checks across results: only tests set it, to show that their
	// attackers catch a leak (WeakenGuardForTest).
	weakened bool
}

// SetRecordStore gives the guard the record it decides against: every
// replica of the query service must share one (NewRecordStore in
// JetStream). Without one, results are refused with 503.
func (s *Server) SetRecordStore(r guard.RecordStore) { s.records = r }

// SetPartitions tells the service the event stream's partition count, so
// that an organisation's waves are released by its own partition's
// checkpoint (schemas.PartitionConsumer), which covers every earlier event
// of the organisation. The default is 1.
func (s *Server) SetPartitions(n int) { s.partitions = n }

// checkpointConsumer names the checkpoint that gates org's waves.
func (s *Server) checkpointConsumer(org string) string {
	return schemas.PartitionConsumer(s.consumer, schemas.PartitionOf(org, s.partitions), s.partitions)
}

// SetReadiness adds a check to /readyz, run after the service's own: the
// process's projector lag, say. Its error is the answer (a 503
// *schemas.Error). Call it before serving.
func (s *Server) SetReadiness(check func(context.Context) error) { s.ready = check }

// WeakenGuardForTest makes the guard serve every cell that has at least K
// respondents, without any check against other results. It exists so that
// the attack tests can show they catch the leaks that follow; nothing else
// may call it.
func (s *Server) WeakenGuardForTest() { s.weakened = true }

// NewServer builds the query service. threshold is the guard's K; consumer
// names the projector whose checkpoint gates a wave's release.
func NewServer(store *Store, threshold int, consumer string, log *slog.Logger) *Server {
	s := &Server{store: store, guard: Guard{K: threshold}, consumer: consumer, log: log.With("component", "query"),
		tokens: tokenCache{entries: map[string]tokenEntry{}}, refreshing: map[string]bool{},
		waveList: newMemo[wavesEntry](1024), scopeData: newMemo[scopeData](2048), types: newMemo[waveTypes](4096),
		driverResults: newMemo[DriversResult](1024)}
	s.app = fiber.New(fiber.Config{
		AppName:               "trustpulse-query",
		ErrorHandler:          httpproblem.ErrorHandler(log),
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
	})
	s.app.Use(func(c *fiber.Ctx) error { return s.Metrics.ObserveHTTP(c, "query") },
		httpproblem.Recover(s.log), httpproblem.SecurityHeaders)
	s.app.Use("/v1", func(c *fiber.Ctx) error {
		// Failed authentications of the API; the dashboards limit their
		// sign-in with the same Limiter (dashboard.limitFailures).
		return s.Limiter.Failures(c, httpproblem.Unauthorized)
	})
	s.routes()
	return s
}

// routes is the query API, in one table.
func (s *Server) routes() {
	live := func(c *fiber.Ctx) error { return c.SendString("ok") }
	s.app.Get("/livez", live)
	s.app.Get("/healthz", live) // the old name of /livez
	s.app.Get("/readyz", s.readyHandler)
	s.app.Get("/openapi.yaml", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "application/yaml")
		return c.Send(api.OpenAPI)
	})
	org := s.app.Group("/v1/orgs/:org", s.authenticate)
	org.Get("/waves", s.listWavesHandler)
	org.Get("/scores", s.periodScoresHandler)
	org.Get("/waves/:wave/scores", s.waveScoresHandler)
	org.Get("/waves/:wave/participation", s.participationHandler)
	org.Get("/waves/:wave/drivers", s.driversHandler)
	org.Get("/waves/:wave/plan-impact", s.planImpactHandler)
	org.Get("/waves/:wave/comments", s.commentsHandler)
	org.Post("/comments/:comment/replies", s.replyHandler)
	org.Get("/plans", s.listPlansHandler)
	org.Post("/plans", s.createPlanHandler)
	org.Put("/plans/:plan", s.updatePlanHandler)
	org.Post("/plans/:plan/complete", s.completePlanHandler)
	org.Get("/waves/:wave/live", s.liveHandler)
	org.Get("/trends", s.trendsHandler)
	org.Get("/retention", s.retentionHandler)
	org.Get("/managers", s.managersHandler)
}

// Waves returns an organisation's waves, open and closed, by id.
func (s *Server) Waves(ctx context.Context, org string) ([]WaveInfo, error) {
	return s.store.Waves(ctx, org)
}

// AttributeValues returns, per attribute, the values an organisation's
// results may be filtered by.
func (s *Server) AttributeValues(ctx context.Context, org string) (map[string][]string, error) {
	return s.store.AttributeValues(ctx, org)
}

// Threshold is the service's default threshold.
func (s *Server) Threshold() int { return s.guard.K }

// Handle lets another part (the dashboard) add its routes to the query
// service's app. Call it before App.
func (s *Server) Handle(add func(r fiber.Router)) { add(s.app) }

// App is the Fiber app, finished with the not-found handler after every
// route added so far.
func (s *Server) App() *fiber.App {
	s.finish.Do(func() {
		s.app.Use(func(c *fiber.Ctx) error {
			return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint")
		})
	})
	return s.app
}

// WaveSummary is one row of GET /v1/orgs/{org}/waves.
type WaveSummary struct {
	WaveID   string    `json:"wave_id"`
	SurveyID string    `json:"survey_id"`
	OpensAt  time.Time `json:"opens_at"`
	ClosesAt time.Time `json:"closes_at"`
	Status   string    `json:"status"` // open or closed
}

func (s *Server) listWavesHandler(c *fiber.Ctx) error {
	if err := onlyParams(c); err != nil {
		return err
	}
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

// waveScoresHandler serves one released wave's scores, optionally
// filtered and grouped.
func (s *Server) waveScoresHandler(c *fiber.Ctx) error {
	filter, groupBy, err := sliceRequest(c, "group_by", "format")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	w, err := s.ReleasedWave(ctx, c.Params("org"), c.Params("wave"))
	if err != nil {
		return err
	}
	return s.sendScores(ctx, c, NewScope([]WaveInfo{w}, filter, s.guard.K), groupBy)
}

// periodScoresHandler serves the scores of several released waves
// together: listed, or every one opened in a period.
func (s *Server) periodScoresHandler(c *fiber.Ctx) error {
	filter, groupBy, err := sliceRequest(c, "waves", "from", "to", "group_by", "format")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 20*time.Second)
	defer cancel()
	waves, err := s.periodWaves(ctx, c, c.Params("org"))
	if err != nil {
		return err
	}
	return s.sendScores(ctx, c, NewScope(waves, filter, s.guard.K), groupBy)
}

// sendScores computes a scope's scores and sends them as JSON, or as CSV
// when asked for (?format=csv or Accept: text/csv).
func (s *Server) sendScores(ctx context.Context, c *fiber.Ctx, sc Scope, groupBy string) error {
	org := c.Params("org")
	res, err := s.Scores(ctx, org, sc, groupBy)
	if err != nil {
		return err
	}
	return send(c, res)
}

// Scores computes a scope's result under every rule of the guard and
// records the sets it serves.
func (s *Server) Scores(ctx context.Context, org string, sc Scope, groupBy string) (Scores, error) {
	res, err := s.ScoresBatch(ctx, org, []Scope{sc}, groupBy)
	if err != nil {
		return Scores{}, err
	}
	return res[0], nil
}

// ScoresBatch computes several scopes' results (a trend's waves) in one
// decision of the guard: the earlier results are kept over later ones
// that would conflict with them.
func (s *Server) ScoresBatch(ctx context.Context, org string, scopes []Scope, groupBy string) ([]Scores, error) {
	if len(scopes) == 0 {
		return nil, nil
	}
	data := make([]scopeData, len(scopes))
	var sets []servedSet
	for i, sc := range scopes {
		var err error
		if data[i], err = s.scopeDataOf(ctx, org, sc, sc.surveys(), groupBy); err != nil {
			return nil, err
		}
		// First without any set suppressed: what the rules within one
		// result would show.
		res := compute(org, sc, groupBy, data[i], allowAll)
		sets = append(sets, res.sets(sc, strconv.Itoa(i)+":")...)
	}
	served, err := s.decideSets(ctx, org, sets)
	if err != nil {
		return nil, err
	}
	// Then again with only the sets the guard serves: a set the first pass
	// hid (by complementary suppression) may not come back because others
	// are hidden now.
	out := make([]Scores, len(scopes))
	for i, sc := range scopes {
		prefix := strconv.Itoa(i) + ":"
		allow := allowedSets{scope: served[prefix+scopeSet], overall: served[prefix+overallSet], groups: map[string]bool{}}
		for ref := range served {
			if v, ok := strings.CutPrefix(ref, prefix+groupSetRef("")); ok {
				allow.groups[v] = true
			}
		}
		out[i] = compute(org, sc, groupBy, data[i], allow)
	}
	return out, nil
}

// surveys lists the surveys of a scope's waves.
func (sc Scope) surveys() []string {
	var out []string
	for _, w := range sc.Waves {
		if !slices.Contains(out, w.SurveyID) {
			out = append(out, w.SurveyID)
		}
	}
	return out
}

// allowedSets are the sets of a result that may show numbers: those the
// guard serves. groups nil allows every group.
type allowedSets struct {
	scope, overall bool
	groups         map[string]bool
}

var allowAll = allowedSets{scope: true, overall: true}

// compute builds one scope's result from its data under the rules within
// one result, with the sets hidden that the guard refuses.
func compute(org string, sc Scope, groupBy string, data scopeData, allow allowedSets) Scores {
	g := Guard{K: sc.K}
	qn, in, overall, groupN, groupCells := data.qn, data.in, data.overall, data.groupN, data.groupCells
	res := Scores{Org: org, Waves: sc.WaveIDs(), Threshold: sc.K, GroupBy: groupBy}
	if len(sc.Waves) == 1 {
		res.WaveID = sc.Waves[0].ID
	}
	for _, cl := range sc.Filter {
		if res.Filter == nil {
			res.Filter = map[string]string{}
		}
		res.Filter[cl.Attr] = cl.Values[0]
	}
	res.Respondents, res.Dimensions, res.Drivers, res.Questions = guardScope(g, in, qn.Text, qn.Order, !allow.scope)
	if res.Respondents.N != nil {
		n := data.invitedTotal()
		res.Invited = &n
	}
	orgDims := res.Dimensions
	if len(sc.Filter) > 0 {
		_, res.Overall, _, _ = guardScope(g, overall, nil, nil, !allow.overall)
		orgDims = res.Overall
		for i := range res.Dimensions {
			if j := indexOfDimension(orgDims, res.Dimensions[i].Dimension); j >= 0 {
				res.Dimensions[i].vsOrg(orgDims[j])
			}
		}
	}
	if groupN != nil {
		res.Groups = guardGroups(g, in.total, groupN, groupCells, allow.groups)
		for _, gs := range res.Groups {
			for i := range gs.Dimensions {
				if j := indexOfDimension(orgDims, gs.Dimensions[i].Dimension); j >= 0 {
					gs.Dimensions[i].vsOrg(orgDims[j])
				}
			}
		}
	}
	return res
}

// scopeData is what a result is computed from, before the guard: it
// depends on released waves only, so it is cached.
type scopeData struct {
	qn Questionnaire
	in scopeCells
	// invited counts the scope's invitations per group of the group-by
	// (one group, "", without one).
	invited    map[string]int
	overall    scopeCells
	groupN     map[string]int
	groupCells []Cell
}

// invitedTotal is the scope's invitations in all.
func (d scopeData) invitedTotal() int {
	n := 0
	for _, v := range d.invited {
		n += v
	}
	return n
}

// scopeDataOf reads (or recalls) a scope's raw aggregates.
func (s *Server) scopeDataOf(ctx context.Context, org string, sc Scope, surveys []string, groupBy string) (scopeData, error) {
	key := scopeKey(org, sc, groupBy)
	if d, ok := s.scopeData.get(key); ok {
		return d, nil
	}
	var d scopeData
	var err error
	if d.qn, err = s.store.Questions(ctx, org, surveys); err != nil {
		return d, err
	}
	if d.in, err = s.scopeCells(ctx, org, sc, d.qn.Drivers, true); err != nil {
		return d, err
	}
	if d.invited, err = s.store.InvitedBy(ctx, org, sc, groupBy); err != nil {
		return d, err
	}
	if len(sc.Filter) > 0 {
		if d.overall, err = s.scopeCells(ctx, org, sc.Unfiltered(), d.qn.Drivers, false); err != nil {
			return d, err
		}
	}
	if groupBy != "" && d.in.total >= sc.K {
		if d.groupN, err = s.store.GroupRespondents(ctx, org, sc, groupBy); err != nil {
			return d, err
		}
		if d.groupCells, err = s.store.DimensionCells(ctx, org, sc, groupBy); err != nil {
			return d, err
		}
	}
	s.scopeData.put(key, d)
	return d, nil
}

// scopeCells reads a scope's raw aggregates: its respondents and its
// dimension cells, and with all set its question and driver cells too.
func (s *Server) scopeCells(ctx context.Context, org string, sc Scope, drivers map[string][]string, all bool) (scopeCells, error) {
	var in scopeCells
	totals, err := s.store.GroupRespondents(ctx, org, sc, "")
	if err != nil {
		return in, err
	}
	in.total = totals[""]
	if in.dims, err = s.store.DimensionCells(ctx, org, sc, ""); err != nil || !all {
		return in, err
	}
	if in.questions, err = s.store.QuestionCells(ctx, org, sc); err != nil {
		return in, err
	}
	in.drivers, err = s.store.DriverCells(ctx, org, sc, drivers)
	return in, err
}

// indexOfDimension returns the index of a dimension's score, or -1.
func indexOfDimension(scores []Score, dim string) int {
	return slices.IndexFunc(scores, func(s Score) bool { return s.Dimension == dim })
}

// readyHandler answers 200 when the query service can serve results:
// ClickHouse answers and the guard's record (NATS) is reachable; else 503
// naming what is down.
func (s *Server) readyHandler(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.store.ch.Ping(ctx); err != nil {
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "ClickHouse does not answer")
	}
	if r, ok := s.records.(interface{ Ready(context.Context) error }); ok {
		if err := r.Ready(ctx); err != nil {
			return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "NATS (the guard's record) does not answer")
		}
	} else if s.records == nil {
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "no record store for the guard")
	}
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			return err
		}
	}
	return c.SendString("ready")
}
