package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trustpulse/trustpulse/deploy/examples"
	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// The demo organisation.
const (
	demoOrg    = "demo"
	demoSurvey = "pulse"
	demoSeed   = 20261126
)

// demoWaves are the three past waves (closed after seeding) and the current
// one (left open, with links printed).
var demoWaves = []struct {
	id        string
	weeksAgo  int
	trend     float64 // added to every score: things get a little better
	responded float64 // share of invitees who answer
}{
	{"2026-06", 24, -0.25, 0.78},
	{"2026-08", 12, 0, 0.82},
	{"2026-10", 4, 0.2, 0.85},
}

const demoOpenWave = "2026-11"

// demoDepartments: teams, head count and how each department scores (added
// to the mean). Legal is smaller than the threshold on purpose.
var demoDepartments = []struct {
	name  string
	teams []string
	size  int
	bias  float64
}{
	{"Engineering", []string{"Platform", "Mobile", "Data"}, 110, 0.25},
	{"Product", []string{"Discovery", "Design"}, 36, 0.35},
	{"Sales", []string{"EMEA", "Americas"}, 64, -0.3},
	{"Customer Success", []string{"Support", "Onboarding"}, 42, -0.1},
	{"Marketing", []string{"Brand", "Growth"}, 24, 0.05},
	{"People", []string{"People Ops"}, 12, 0.4},
	{"Legal", []string{"Legal"}, 4, 0},
}

var (
	demoLocations = []string{"Berlin", "Lisbon", "Remote"}
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, log, err := parse("demo", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg.Target = "all"
	// The demo's people are synthetic: their emails go to the development
	// sink under the data directory, never to a relay.
	cfg.SMTPHost, cfg.MailRate = "", 500
	cfg.SealGrace = time.Second // the demo submits synchronously: nothing is in flight at a close
	if cfg.AdminToken == "" {
		cfg.AdminToken = ingest.NewToken() // for this run only
	}
	m, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	m.Start()
	defer m.Close()
	analyst, _, err := m.Admin.IssueToken(ctx, demoOrg, schemas.RoleAnalyst, "demo analyst")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	leader, _, err := m.Admin.IssueToken(ctx, demoOrg, schemas.RoleLeader, "demo leader")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	seeded, err := seedDemo(ctx, m, stdout, analyst)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	people, err := m.Admin.People(ctx, demoOrg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	printDemo(stdout, m, seeded, analyst, leader)
	printDemoManagers(stdout, m, seeded, people, analyst)
	if err := printDemoSignIn(ctx, stdout, m, people); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping trustpulse demo")
	return nil
}

// employee is one synthetic person of the demo.
type employee struct {
	row  ingest.RosterRow
	bias float64
}

var (
	demoFirst = []string{"Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Lars", "Mei", "Noor", "Omar", "Paula"}
	demoLast  = []string{"Almeida", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hansen", "Ito", "Jansen", "Klein", "Lopez", "Müller", "Novak", "Okafor", "Petrov"}
)

// demoEmployees makes the demo roster: names, addresses at demo.example,
// departments, teams, locations, start dates up to nine years back, and a
// reporting tree: a CEO (demoCEO, in People Ops); per department a head
// reporting to the CEO; per team a manager reporting to the head (the
// head manages their own team's manager too); everyone else reporting to
// their team's manager.
func demoEmployees(rng *rand.Rand, now time.Time) []employee {
	var out []employee
	add := func(bias float64, dept, team, manager string) string {
		n := len(out) + 1
		first, last := demoFirst[rng.IntN(len(demoFirst))], demoLast[rng.IntN(len(demoLast))]
		out = append(out, employee{bias: bias + rng.NormFloat64()*0.3, row: ingest.RosterRow{
			EmployeeID: fmt.Sprintf("E%04d", n),
			Email:      fmt.Sprintf("person%04d@demo.example", n),
			Name:       first + " " + last,
			Department: dept,
			Team:       team,
			Location:   demoLocations[rng.IntN(len(demoLocations))],
			ManagerID:  manager,
			StartDate:  now.AddDate(0, 0, -30-rng.IntN(9*365)).Format(schemas.DateLayout),
		}})
		return out[n-1].row.EmployeeID
	}
	ceo := add(0.4, "People", "People Ops", "")
	for _, d := range demoDepartments {
		var head string
		leads := map[string]string{}
		for i := range d.size {
			team := d.teams[i%len(d.teams)]
			switch {
			case i == 0:
				head = add(d.bias, d.name, team, ceo)
			case leads[team] == "":
				leads[team] = add(d.bias, d.name, team, head)
			default:
				add(d.bias, d.name, team, leads[team])
			}
		}
	}
	return out
}

// demoCEO, demoHead and demoLead are the employee ids of the CEO, the head
// of Engineering and the manager of its Platform team (demoEmployees).
const (
	demoCEO  = "E0001"
	demoHead = "E0002"
	demoLead = "E0005"
)

// seedDemo creates the demo organisation unless it exists: the survey, three
// past waves with responses submitted through the real HTTP ingest path,
// and an open wave whose links it returns.
func seedDemo(ctx context.Context, m *Main, stdout io.Writer, token string) (seeded demoSeeded, err error) {
	if _, ok := m.Catalog.Survey(demoOrg, demoSurvey); ok {
		fmt.Fprintln(stdout, "demo organisation already seeded; serving it (links below may have been used already)")
		seeded.links, err = emailedLinks(ctx, m, 6)
		return seeded, err
	}
	survey, err := ingest.ParseSurveyFile("leadership-pulse.yaml", examples.LeadershipPulse)
	if err != nil {
		return seeded, err
	}
	if err := m.Admin.PublishSurvey(ctx, demoOrg, survey); err != nil {
		return seeded, err
	}
	now := time.Now().UTC()
	rng := rand.New(rand.NewPCG(demoSeed, demoSeed))
	people := demoEmployees(rng, now)
	rows := make([]ingest.RosterRow, len(people))
	for i, p := range people {
		rows[i] = p.row
	}
	if _, err := m.Admin.ImportRoster(ctx, demoOrg, rows, nil); err != nil {
		return seeded, err
	}
	fmt.Fprintf(stdout, "imported a roster of %d people (a CEO, %d department heads, team managers)\n", len(rows), len(demoDepartments))
	// The past waves' invitations carry each person's own cohort with their
	// reporting line, as `trustpulse invite` would store it.
	onRoster, err := m.Admin.People(ctx, demoOrg)
	if err != nil {
		return seeded, err
	}
	cohorts := make([]schemas.Cohort, len(people))
	for i, p := range people {
		if cohorts[i], err = ingest.OwnCohort(onRoster, p.row.EmployeeID, now); err != nil {
			return seeded, err
		}
	}
	for _, w := range demoWaves {
		if err := m.Admin.OpenWave(ctx, demoOrg, schemas.WaveOpened{WaveID: w.id, SurveyID: demoSurvey,
			OpensAt: now.AddDate(0, 0, -7*w.weeksAgo), ClosesAt: now.Add(time.Hour)}); err != nil {
			return seeded, err
		}
		tokens, err := m.Admin.IssueInvitations(ctx, demoOrg, w.id, cohorts)
		if err != nil {
			return seeded, err
		}
		var bodies [][]byte
		for i, p := range people {
			if rng.Float64() >= w.responded {
				continue
			}
			comments := demoComments(rng, survey)
			if w.id == demoReplyWave && seeded.replyLink == "" {
				// One comment asks to hear back; its writer keeps the reply
				// link the thanks page shows (seeded below: a reply and an
				// answer back).
				comments = map[string]string{"comment-better": demoHearBack}
				answers := demoAnswers(rng, survey, p.bias+w.trend)
				if seeded.replyLink, err = submitForReplyLink(ctx, m.IngestURL, tokens[i], answers, comments); err != nil {
					return seeded, err
				}
				continue
			}
			body, _ := json.Marshal(map[string]any{"token": tokens[i], "answers": demoAnswers(rng, survey, p.bias+w.trend), "comments": comments})
			bodies = append(bodies, body)
		}
		if err := submitAll(ctx, m.IngestURL, bodies); err != nil {
			return seeded, err
		}
		if err := m.Admin.CloseWave(ctx, demoOrg, w.id); err != nil {
			return seeded, err
		}
		fmt.Fprintf(stdout, "seeded wave %s: %d invited, %d responses submitted over HTTP\n", w.id, len(tokens), len(bodies))
	}
	// Some people have left since the last wave: every 20th.
	var staying []ingest.RosterRow
	for i, r := range rows {
		if i%20 != 7 {
			staying = append(staying, r)
		}
	}
	if _, err := m.Admin.ImportRoster(ctx, demoOrg, staying, nil); err != nil {
		return seeded, err
	}
	fmt.Fprintf(stdout, "re-imported the roster: %d people left\n", len(rows)-len(staying))
	// The past waves are released before the open wave is invited, so that
	// the Platform team's plan is in its invitations.
	if err := waitReleased(ctx, m.QueryURL, token, demoWaves[len(demoWaves)-1].id); err != nil {
		return seeded, err
	}
	if err := planDemo(ctx, m, stdout); err != nil {
		return seeded, err
	}
	if err := m.Admin.OpenWave(ctx, demoOrg, schemas.WaveOpened{WaveID: demoOpenWave, SurveyID: demoSurvey,
		OpensAt: now, ClosesAt: now.AddDate(0, 0, 14)}); err != nil {
		return seeded, err
	}
	invited, err := m.Admin.InviteRoster(ctx, demoOrg, demoOpenWave, ingest.Audience{})
	if err != nil {
		return seeded, err
	}
	fmt.Fprintf(stdout, "opened wave %s and emailed %d invitations to the development mail sink (%s)\n", demoOpenWave, invited.Invited, m.MailSink.Dir)
	printInvited(stdout, invited)
	if err := answerDemoComment(ctx, m, seeded.replyLink); err != nil {
		return seeded, err
	}
	fmt.Fprintln(stdout, "people ops replied to a comment of wave "+demoReplyWave+", and its writer answered back through their reply link")
	seeded.links, err = emailedLinks(ctx, m, 6)
	return seeded, err
}

// demoSeeded is what seeding leaves to print: survey links of the open
// wave, and the reply link of the one comment with a reply (first run only:
// it is stored nowhere).
type demoSeeded struct {
	links     []string
	replyLink string
}

// The comment whose writer hears back, in which wave.
const (
	demoReplyWave = "2026-10"
	demoHearBack  = "How will these results change anything? I would like to hear back."
)

// submitForReplyLink posts one response with comments and returns the
// reply link of its 202 body.
func submitForReplyLink(ctx context.Context, ingestURL, token string, answers map[string]int, comments map[string]string) (string, error) {
	body, _ := json.Marshal(map[string]any{"token": token, "answers": answers, "comments": comments})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ingestURL+"/v1/responses", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	defer resp.Body.Close()
	var res ingest.SubmitResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusAccepted || res.ReplyLink == "" {
		return "", fmt.Errorf("submit with a comment: %s, reply link %q, %v", resp.Status, res.ReplyLink, err)
	}
	return res.ReplyLink, nil
}

// planDemo has people ops write action plans from the results of the wave
// before the last, so that the plan page shows how their focus drivers
// moved in the last, and the overview compares the teams with a plan
// against the teams without: the Platform team's (two drivers, two
// commitments) and those of demoPlanTeams more teams (planTeams), each on
// the survey's first driver.
func planDemo(ctx context.Context, m *Main, stdout io.Writer) error {
	people, err := m.Admin.People(ctx, demoOrg)
	if err != nil {
		return err
	}
	_, tokenID, err := m.Admin.IssueToken(ctx, demoOrg, schemas.RoleAnalyst, "people ops (demo plan)")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for active := false; !active; { // the plan names its author's token
		if active, err = m.Query.TokenActive(wctx, tokenID); err != nil {
			return err
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the demo plan's token was not projected: %w", wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	wave := demoWaves[len(demoWaves)-2].id
	drivers, err := m.Query.WaveDrivers(ctx, demoOrg, wave)
	if err != nil {
		return err
	}
	p := &query.Principal{Org: demoOrg, TokenID: tokenID, Role: schemas.RoleAnalyst}
	_, err = m.Query.CreatePlan(ctx, p, query.PlanInput{WaveID: wave, Manager: people[demoLead].PersonID,
		FocusDrivers: drivers[:min(2, len(drivers))],
		Commitments:  []string{"A 30-minute one-to-one every fortnight", "Say in the team meeting why priorities changed"}})
	if err != nil {
		return fmt.Errorf("demo plan: %w", err)
	}
	others := planTeams(people, demoLead, demoPlanTeams)
	for _, lead := range others {
		if _, err := m.Query.CreatePlan(ctx, p, query.PlanInput{WaveID: wave, Manager: people[lead].PersonID,
			FocusDrivers: drivers[:1], Commitments: []string{"Talk the results through as a team and agree one change"}}); err != nil {
			return fmt.Errorf("demo plan of %s: %w", lead, err)
		}
	}
	fmt.Fprintf(stdout, "people ops wrote action plans from wave %s for the Platform team and %d more teams\n", wave, len(others))
	return nil
}

// demoPlanTeams is how many teams besides Platform have a plan in the
// demo: with Platform, enough for a leader to see the teams that picked
// the first driver (query.LeaderMinTeams).
const demoPlanTeams = 3

// planTeams picks, by employee id, n team managers (who report to a
// department head and manage someone) other than first's, at most one per
// department in the order of demoDepartments, never every team of a
// department: a department less its teams with a plan is then its other
// teams and managers, not its few managers alone, which the guard would
// have to refuse beside the department heatmap.
func planTeams(people map[string]schemas.Person, first string, n int) []string {
	manages := map[string]bool{}
	for _, p := range people {
		manages[p.ManagerID] = true
	}
	byDept := map[string][]string{}
	for id, p := range people {
		if manages[id] && p.LeftOn == "" && p.ManagerID != "" && people[p.ManagerID].ManagerID == demoCEO {
			byDept[p.Department] = append(byDept[p.Department], id)
		}
	}
	var out []string
	for _, d := range demoDepartments {
		leads := byDept[d.name]
		slices.Sort(leads)
		planned := 0
		if slices.Contains(leads, first) {
			planned++
		}
		for _, id := range leads {
			if len(out) == n || planned+1 >= len(leads) {
				break
			}
			if id != first {
				out = append(out, id)
				planned++
				break
			}
		}
	}
	return out
}

// answerDemoComment has people ops (a token of its own) reply to the
// comment of link, as the comments page does, and the link's holder
// answer back, as the reply page does; it waits until both are projected.
func answerDemoComment(ctx context.Context, m *Main, link string) error {
	caps, err := schemas.ParseReplyLink(link[strings.LastIndex(link, "/")+1:])
	if err != nil {
		return fmt.Errorf("reply link %q: %w", link, err)
	}
	held, err := m.Query.HeldComments(ctx, caps)
	if err != nil || len(held) != 1 {
		return fmt.Errorf("the demo's comment with a reply link: %d found, %v", len(held), err)
	}
	_, tokenID, err := m.Admin.IssueToken(ctx, demoOrg, schemas.RoleAnalyst, "people ops (demo replies)")
	if err != nil {
		return err
	}
	p := &query.Principal{Org: demoOrg, TokenID: tokenID, Role: schemas.RoleAnalyst}
	if _, err := m.Query.Reply(ctx, p, held[0].ID, "Thank you for asking. Each team picks up to three focus areas from these results and shares its plan; ours is on the team page.", nil); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	if _, err := m.Query.Answer(ctx, caps, held[0].ID, "Thanks, that helps. Could the plan say when we check back?"); err != nil {
		return fmt.Errorf("answer back: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if held, err := m.Query.HeldComments(ctx, caps); err == nil && len(held) == 1 && len(held[0].Thread) == 2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo's reply and answer were not projected: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// emailedLinks waits for n emails in the development sink and returns their
// survey links.
func emailedLinks(ctx context.Context, m *Main, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		files, err := m.MailSink.Messages()
		if err != nil {
			return nil, err
		}
		// Managers' "results are ready" emails carry no survey link.
		var links []string
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if l := mailsink.Link(raw); l != "" && len(links) < n {
				links = append(links, l)
			}
		}
		if len(links) >= n {
			return links, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("emails did not reach the mail sink: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// demoAnswers draws one plausible response: agreement around 3.6 plus the
// person's bias, eNPS correlated with it; the optional item is skipped now
// and then.
func demoAnswers(rng *rand.Rand, s schemas.SurveyPublished, bias float64) map[string]int {
	out := map[string]int{}
	for _, q := range s.Questions {
		if q.Dimension == schemas.Comment || q.Optional && rng.IntN(5) == 0 {
			continue
		}
		lo, hi := q.Dimension.Range()
		mean, sd := 3.6+bias, 0.9
		if q.Dimension == schemas.ENPS {
			mean, sd = 7.2+2*bias, 1.8
		}
		v := int(math.Round(mean + rng.NormFloat64()*sd))
		out[q.ID] = min(max(v, lo), hi)
	}
	return out
}

// demoIdeas are the words of the demo's comments.
var demoIdeas = []string{
	"Fewer meetings on Fridays would give us time to think.",
	"Share the reasons behind roadmap changes earlier.",
	"More budget for conferences and learning.",
	"Let teams choose their own tools.",
	"Clearer career paths for specialists, not only managers.",
	"Quieter spaces in the office for focused work.",
	"Keep the monthly all-hands; the Q&A helps a lot.",
	"Faster decisions on small purchases.",
}

// demoComments draws the comments of one response: about two in five say
// something.
func demoComments(rng *rand.Rand, s schemas.SurveyPublished) map[string]string {
	out := map[string]string{}
	for _, q := range s.Questions {
		if q.Dimension == schemas.Comment && rng.IntN(5) < 2 {
			out[q.ID] = demoIdeas[rng.IntN(len(demoIdeas))]
		}
	}
	return out
}

// submitAll posts responses to the ingest API, four at a time.
func submitAll(ctx context.Context, ingestURL string, bodies [][]byte) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	work := make(chan []byte)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ingestURL+"/v1/responses", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					if resp.StatusCode != http.StatusAccepted {
						b, _ := io.ReadAll(resp.Body)
						err = fmt.Errorf("submit: %s: %s", resp.Status, b)
					}
					resp.Body.Close()
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// waitReleased waits until the query API serves a wave's scores, that is
// until the projector has caught up with its close.
func waitReleased(ctx context.Context, queryURL, token, wave string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/orgs/%s/waves/%s/scores", queryURL, demoOrg, wave), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wave %s not released: %w", wave, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printDemo(w io.Writer, m *Main, seeded demoSeeded, analyst, leader string) {
	links := seeded.links
	q, in := m.QueryURL, m.IngestURL
	last := demoWaves[len(demoWaves)-1].id
	fmt.Fprintf(w, `
trustpulse demo is running (Ctrl-C stops it)

  ingest API  %[1]s   (survey pages: /s/TOKEN)
  query API   %[2]s
  admin API   %[7]s
  NATS        %[3]s
  ClickHouse  %[4]s (native protocol)

API tokens for this run (the query API needs one; issue more with 'trustpulse token issue'):
  analyst  %[11]s
  leader   %[12]s

Dashboards: open the overview in a browser and sign in by pasting a token above
(the leader's for the leadership overview; the analyst's to slice further):
  overview  %[2]s/dashboard
  explorer  %[2]s/dashboard/explore

Try:
  A='Authorization: Bearer %[11]s'
  L='Authorization: Bearer %[12]s'

  # the demo organisation's waves
  curl -s -H "$A" %[2]s/v1/orgs/demo/waves

  # scores of the latest closed wave, per dimension and question (a leader's view)
  curl -s -H "$L" %[2]s/v1/orgs/demo/waves/%[5]s/scores

  # the same by department: Legal's 4 people are stored under "other departments" (fewer than k share their own)
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[5]s/scores?group_by=department'

  # trends across waves (a leader may see them too)
  curl -s -H "$L" %[2]s/v1/orgs/demo/trends

  # participation by department
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[5]s/participation?group_by=department'

  # what drives engagement: each driver's correlation with the engagement index
  curl -s -H "$A" %[2]s/v1/orgs/demo/waves/%[5]s/drivers

  # attrition per department over the last year, beside engagement
  curl -s -H "$A" '%[2]s/v1/orgs/demo/retention?group_by=department'

  # the department table as CSV
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[5]s/scores?group_by=department&format=csv'

  # Engineering only, by team, beside the organisation overall (vs_org)
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[5]s/scores?department=Engineering&group_by=team'

  # the three closed waves pooled (a period), by location
  curl -s -H "$A" '%[2]s/v1/orgs/demo/scores?waves=%[6]s,%[13]s,%[5]s&group_by=location'

  # comments, word for word, for groups of 10 or more only
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[5]s/comments?question=comment-better'

  # an earlier wave, by location
  curl -s -H "$A" '%[2]s/v1/orgs/demo/waves/%[6]s/scores?group_by=location'

  # leaders see nothing finer than departments (403)
  curl -s -H "$L" '%[2]s/v1/orgs/demo/waves/%[5]s/scores?group_by=team'

  # the admin API (token for this run): remind those who have not answered the open wave
  curl -s -X POST -H 'Authorization: Bearer %[8]s' %[7]s/v1/orgs/demo/waves/%[9]s/remind

  # close the open wave: once at least 5 answered, its scores appear within seconds
  bin/trustpulse wave close --data-dir %[10]s --org demo --wave %[9]s
  curl -s -H "$A" %[2]s/v1/orgs/demo/waves/%[9]s/scores
`, in, q, m.Stack.NATSURL, m.Stack.ClickHouseAddr, last, demoWaves[0].id, m.AdminURL, m.Config.AdminToken, demoOpenWave, m.Config.DataDir, analyst, leader, demoWaves[1].id)
	if len(links) > 0 {
		fmt.Fprintf(w, `
Survey links of the open wave %[1]s, from emails in the development mail sink
(single-use; open them in a browser, answer, submit; answer five or more, then
close the wave as shown above to see them in the scores):
`, demoOpenWave)
		for _, l := range links {
			fmt.Fprintf(w, "  %s\n", l)
		}
		token := links[len(links)-1][strings.LastIndex(links[len(links)-1], "/")+1:]
		fmt.Fprintf(w, `
  # or answer through the API with a link's token (a second try gets 409 token_used)
  curl -s -X POST %[1]s/v1/responses -H 'Content-Type: application/json' \
    -d '{"token":"%[2]s","answers":{"ei-pride":4,"ei-recommend":4,"ei-present":3,"ei-future":4,"ei-motivation":4,"autonomy":5,"manager-support":4,"transparency":4,"recognition":3,"enps":9},"comments":{"comment-better":"More time to think."}}'
`, in, token)
	}
	fmt.Fprintln(w)
}

// printDemoManagers prints how to see the reporting tree's groups and the
// answered comment.
func printDemoManagers(w io.Writer, m *Main, seeded demoSeeded, people map[string]schemas.Person, analyst string) {
	head, lead := people[demoHead], people[demoLead]
	fmt.Fprintf(w, `Managers (the roster's tree: CEO %[4]s, heads of department, team managers):
  A='Authorization: Bearer %[3]s'

  # the Platform team's results: the direct reports of its manager, %[5]s (%[6]s)
  curl -s -H "$A" '%[1]s/v1/orgs/demo/waves/%[2]s/scores?manager=%[7]s'

  # the head of Engineering's whole organisation, %[8]s (%[9]s), by direct manager
  curl -s -H "$A" '%[1]s/v1/orgs/demo/waves/%[2]s/scores?reports_to=%[10]s&group_by=manager'

  # the Platform team's action plan and how its focus drivers moved (also at
  # %[1]s/dashboard/plans?manager=%[7]s)
  curl -s -H "$A" '%[1]s/v1/orgs/demo/plans?manager=%[7]s'

  # did the plans help? the focus drivers of wave %[11]s's plans, teams with a
  # plan against teams without (a leader sees groups of three teams or more;
  # also on the overview)
  curl -s -H "$A" '%[1]s/v1/orgs/demo/waves/%[11]s/plan-impact'
`, m.QueryURL, demoWaves[len(demoWaves)-1].id, analyst, people[demoCEO].Name,
		lead.Name, lead.EmployeeID, lead.PersonID, head.Name, head.EmployeeID, head.PersonID, demoWaves[len(demoWaves)-2].id)
	if seeded.replyLink != "" {
		fmt.Fprintf(w, `
A comment of wave %s that people ops replied to and its writer answered back
(the writer's private reply link, shown once on their thanks page; stored nowhere):
  %s
  (the thread, for analysts: %s/dashboard/comments)
`, demoReplyWave, seeded.replyLink, m.QueryURL)
	}
	fmt.Fprintln(w)
}

// demoSignInLink waits (up to 30s) for the latest "your team's results are
// ready" email to a manager in the development sink and returns its
// sign-in link, or "" when none came.
func demoSignInLink(ctx context.Context, m *Main, email string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		files, err := m.MailSink.Messages()
		if err != nil {
			return "", err
		}
		link := ""
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			msg, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				continue
			}
			if to, err := mail.ParseAddress(msg.Header.Get("To")); err == nil && to.Address == email {
				if l := mailsink.SignInLink(raw); l != "" {
					link = l
				}
			}
		}
		if link != "" {
			return link, nil
		}
		select {
		case <-ctx.Done():
			return "", nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printDemoSignIn prints the head of Engineering's emailed sign-in link.
func printDemoSignIn(ctx context.Context, w io.Writer, m *Main, people map[string]schemas.Person) error {
	head := people[demoHead]
	link, err := demoSignInLink(ctx, m, head.Email)
	if err != nil || link == "" {
		return err
	}
	fmt.Fprintf(w, `The latest sign-in link emailed to %s, head of Engineering, as the past waves'
results were released ("your team's results are ready"). Opening it uses
nothing (a mail scanner's visit cannot spend it): its page has one Sign in
button, which works once, for 7 days, and opens their team's page as a manager:
  %s

`, head.Name, link)
	return nil
}
