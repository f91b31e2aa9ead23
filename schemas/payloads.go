package schemas

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Dimension is what a question measures: trust, empowerment, motivation
// and the engagement index on the 1–5 agreement scale, eNPS on 0–10.
type Dimension string

// The dimensions. Likert questions measure trust, empowerment or motivation;
// eNPS questions use the 0–10 scale.
const (
	Trust       Dimension = "trust"
	Empowerment Dimension = "empowerment"
	Motivation  Dimension = "motivation"
	// Engagement marks the items of the 5-item engagement index.
	Engagement Dimension = "engagement"
	ENPS       Dimension = "enps"
	// Comment marks a free-text question: answered in words, never scored,
	// always optional, and shown only to groups of CommentThreshold or more.
	Comment Dimension = "comment"
)

// Dimensions lists every dimension in display order.
var Dimensions = []Dimension{Engagement, Trust, Empowerment, Motivation, ENPS}

// Valid reports whether d is a known dimension.
func (d Dimension) Valid() bool {
	switch d {
	case Trust, Empowerment, Motivation, Engagement, ENPS, Comment:
		return true
	}
	return false
}

// Range returns the inclusive answer range of a question of dimension d:
// 0–10 for eNPS, 1–5 (strongly disagree … strongly agree) otherwise.
func (d Dimension) Range() (lo, hi int) {
	if d == ENPS {
		return 0, 10
	}
	return 1, 5
}

// Required reports whether a question must be answered: comment questions
// never must.
func (q Question) Required() bool { return !q.Optional && q.Dimension != Comment }

// Question is one survey item.
type Question struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Dimension Dimension `json:"dimension"`
	Driver    string    `json:"driver,omitempty"`
	Optional  bool      `json:"optional,omitempty"`
}

// SurveyPublished defines (or redefines) a survey. Waves refer to it.
type SurveyPublished struct {
	SurveyID  string     `json:"survey_id"`
	Title     string     `json:"title"`
	Questions []Question `json:"questions"`
}

// WaveOpened starts collecting responses for a survey until ClosesAt.
type WaveOpened struct {
	WaveID   string    `json:"wave_id"`
	SurveyID string    `json:"survey_id"`
	OpensAt  time.Time `json:"opens_at"`
	ClosesAt time.Time `json:"closes_at"`
	// ReminderDays are the days after opening on which invitees who have
	// not answered get a reminder (e.g. 3 and 5).
	ReminderDays []int `json:"reminder_days,omitempty"`
	// QuestionIDs, when set, is the subset of the survey this wave asks
	// (question rotation); empty asks every question.
	QuestionIDs []string `json:"question_ids,omitempty"`
	// ScheduleID names the pulse schedule that opened the wave, if any.
	ScheduleID string `json:"schedule_id,omitempty"`
	// Threshold is the wave's reporting threshold k, fixed when it opens
	// from the organisation's setting: no number about the wave is ever
	// served from fewer than k distinct respondents. Zero (waves opened
	// before thresholds were per organisation) means the query service's
	// default.
	Threshold int `json:"threshold,omitempty"`
}

// OrgConfigured sets an organisation's settings.
type OrgConfigured struct {
	// SenderName is the display name of the organisation's survey emails,
	// e.g. "Acme People Team".
	SenderName string `json:"sender_name"`
	// Threshold is the reporting threshold k of waves opened from now on,
	// MinThreshold to MaxThreshold; zero means DefaultThreshold. A wave
	// keeps the threshold it opened with.
	Threshold int `json:"threshold,omitempty"`
}

// Reporting thresholds: the fewest distinct respondents behind any served
// number. Comments need more (CommentThreshold), as their words can
// identify.
const (
	MinThreshold     = 3
	MaxThreshold     = 10
	DefaultThreshold = 5
	CommentThreshold = 10
)

// ValidThreshold reports whether k may be an organisation's threshold.
func ValidThreshold(k int) bool { return k >= MinThreshold && k <= MaxThreshold }

// Role is what an API token may do. Leaders see organisation-wide and
// department results; analysts slice by every attribute within the guard;
// admins manage and see no more results than analysts.
type Role string

// The roles.
const (
	RoleAdmin   Role = "admin"
	RoleAnalyst Role = "analyst"
	RoleLeader  Role = "leader"
	RoleManager Role = "manager"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleAnalyst || r == RoleLeader || r == RoleManager
}

// TokenIssued records an organisation-scoped API token. Only the SHA-256 of
// the token is kept; the token itself is shown once, to whoever issued it.
type TokenIssued struct {
	TokenID string `json:"token_id"`
	Role    Role   `json:"role"`
	Name    string `json:"name"`
	Hash    string `json:"hash"` // hex SHA-256 of the token
	// PersonID binds a manager's token to the roster person (a random
	// person id) whose subtree its results are limited to; empty for the
	// other roles.
	PersonID string `json:"person_id,omitempty"`
}

// TokenRevoked withdraws a token.
type TokenRevoked struct {
	TokenID string `json:"token_id"`
}

// Audience selects invitees from the roster: everyone still employed,
// narrowed by any attribute that is set.
type Audience struct {
	Department string `json:"department,omitempty"`
	Team       string `json:"team,omitempty"`
	Location   string `json:"location,omitempty"`
}

// ScheduleSet defines (or redefines) a pulse schedule: every EveryWeeks
// weeks from FirstOpensAt a wave of the survey opens for OpenDays days, its
// audience is invited, and, with DriversPerPulse set, it asks only that many
// drivers, rotating so that every driver is asked over a cycle (eNPS,
// engagement-index and driverless questions are always asked).
type ScheduleSet struct {
	ScheduleID      string    `json:"schedule_id"`
	SurveyID        string    `json:"survey_id"`
	FirstOpensAt    time.Time `json:"first_opens_at"`
	EveryWeeks      int       `json:"every_weeks"`
	OpenDays        int       `json:"open_days"`
	ReminderDays    []int     `json:"reminder_days,omitempty"`
	DriversPerPulse int       `json:"drivers_per_pulse,omitempty"`
	Audience        Audience  `json:"audience"`
}

// Validate checks a schedule's numbers.
func (s ScheduleSet) Validate() error {
	var errs []error
	if !ValidID(s.ScheduleID) {
		errs = append(errs, fmt.Errorf("schedule id %q: want 1-64 of a-z, 0-9, '-', '_'", s.ScheduleID))
	}
	if s.EveryWeeks < 1 || s.EveryWeeks > 52 {
		errs = append(errs, fmt.Errorf("every_weeks %d: want 1-52", s.EveryWeeks))
	}
	if s.OpenDays < 1 || s.OpenDays > 7*s.EveryWeeks {
		errs = append(errs, fmt.Errorf("open_days %d: want 1 to the period (%d days)", s.OpenDays, 7*s.EveryWeeks))
	}
	for _, d := range s.ReminderDays {
		if d < 1 || d >= s.OpenDays {
			errs = append(errs, fmt.Errorf("reminder day %d: want a day after opening and before closing", d))
		}
	}
	if s.DriversPerPulse < 0 {
		errs = append(errs, fmt.Errorf("drivers_per_pulse %d: want 0 (all) or more", s.DriversPerPulse))
	}
	return errors.Join(errs...)
}

// RotatedQuestions returns the ids of the questions pulse k (0, 1, 2 ...) of
// a rotation asks: perPulse drivers, taken in turn from the survey's drivers
// in order, plus every question that has no rotating driver. perPulse 0
// asks everything (nil).
func RotatedQuestions(s SurveyPublished, perPulse, k int) []string {
	var drivers []string
	seen := map[string]bool{}
	for _, q := range s.Questions {
		if rotates(q) && !seen[q.Driver] {
			seen[q.Driver] = true
			drivers = append(drivers, q.Driver)
		}
	}
	if perPulse <= 0 || perPulse >= len(drivers) {
		return nil
	}
	asked := map[string]bool{}
	for i := range perPulse {
		asked[drivers[(k*perPulse+i)%len(drivers)]] = true
	}
	var ids []string
	for _, q := range s.Questions {
		if !rotates(q) || asked[q.Driver] {
			ids = append(ids, q.ID)
		}
	}
	return ids
}

// rotates reports whether a question takes part in driver rotation.
func rotates(q Question) bool {
	return q.Driver != "" && q.Dimension != ENPS && q.Dimension != Engagement
}

// Asking returns the survey as a wave asks it: only the questions in ids,
// or all of them when ids is empty.
func (s SurveyPublished) Asking(ids []string) SurveyPublished {
	if len(ids) == 0 {
		return s
	}
	keep := map[string]bool{}
	for _, id := range ids {
		keep[id] = true
	}
	out := s
	out.Questions = nil
	for _, q := range s.Questions {
		if keep[q.ID] {
			out.Questions = append(out.Questions, q)
		}
	}
	return out
}

// WaveClosed ends a wave: no response published after it counts.
type WaveClosed struct {
	WaveID string `json:"wave_id"`
}

// WaveSealed follows the last response of a closed wave on the stream: the
// mixer publishes it after it has released every held response of the wave.
// Results of a wave are computed from the responses before its seal.
type WaveSealed struct {
	WaveID string `json:"wave_id"`
}

// EmployeeJoined, EmployeeUpdated and EmployeeLeft record the roster over
// time: attributes and dates, the basis of the retention KPI. They name a
// person by PersonID, a random id the roster assigns, never by employee id,
// email or name, which stay in the people bucket.
type EmployeeJoined struct {
	PersonID   string `json:"person_id"`
	Department string `json:"department"`
	Team       string `json:"team"`
	Location   string `json:"location"`
	StartDate  string `json:"start_date"` // YYYY-MM-DD
	// ManagerPersonID is the person id of the person's manager in the
	// roster ("" for none): the current reporting tree, by person ids only.
	ManagerPersonID string `json:"manager_person_id,omitempty"`
}

// EmployeeUpdated carries a person's attributes after a change.
type EmployeeUpdated = EmployeeJoined

// EmployeeLeft records that a person left the roster on a day.
type EmployeeLeft struct {
	PersonID string `json:"person_id"`
	LeftOn   string `json:"left_on"` // YYYY-MM-DD
}

// Cohort is the snapshot of a respondent's attributes used for slicing. It
// never identifies a person on its own; the query guard keeps small cohorts
// out of every result.
type Cohort struct {
	Department string `json:"department"`
	Team       string `json:"team"`
	Location   string `json:"location"`
	TenureBand string `json:"tenure_band"`
	// Managers are the person ids (never employee ids, emails or names) of
	// the managers whose "all reports" groups this person counts in, top of
	// the tree first: the reporting line above the person, possibly cut to
	// its top by generalisation. A person counts for their managers'
	// groups, never for their own.
	Managers []string `json:"managers,omitempty"`
	// Manager is the person id of the manager whose "direct reports" group
	// the person counts in; when set it equals the last element of
	// Managers. Empty when the person has no manager or generalisation
	// dropped it.
	Manager string `json:"manager,omitempty"`
}

// InvitationIssued records that one invitation to a wave exists for someone
// of the given cohort. It carries neither the person nor the token: the
// invitation ledger (a key-value bucket keyed by token hash) is the only place
// a token is checked.
type InvitationIssued struct {
	WaveID string `json:"wave_id"`
	Cohort Cohort `json:"cohort"`
}

// Answer is one answered question.
type Answer struct {
	QuestionID string    `json:"question_id"`
	Dimension  Dimension `json:"dimension"`
	Value      int       `json:"value"`
}

// CommentAnswer is the words given to a comment question.
type CommentAnswer struct {
	QuestionID string `json:"question_id"`
	Text       string `json:"text"`
}

// MaxCommentLen is the most characters a comment may have.
const MaxCommentLen = 1000

// ResponseSubmitted is one anonymous response. It carries the answers, the
// cohort snapshot and the day it was given — never an employee id, email,
// name or invitation token, and (from version 2) never its comments: each
// comment is a CommentSubmitted event of its own, so that nothing on the
// stream or in ClickHouse ties words to numbers.
type ResponseSubmitted struct {
	SurveyID string   `json:"survey_id"`
	WaveID   string   `json:"wave_id"`
	Date     string   `json:"date"` // YYYY-MM-DD, UTC
	Cohort   Cohort   `json:"cohort"`
	Answers  []Answer `json:"answers"`
	// LegacyComments are the comments of a version 1 event, which carried
	// them inside the response. Only the upcaster sets it; ingest never
	// does. See upcastResponseV1.
	LegacyComments []CommentAnswer `json:"legacy_comments,omitempty"`
}

// DateLayout is the day-granularity layout of ResponseSubmitted.Date.
const DateLayout = "2006-01-02"

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidID reports whether s can be used as an organisation, survey, wave or
// question id: 1–64 lower-case letters, digits, '-' or '_', starting with a
// letter or digit. Org ids are NATS subject tokens, so this also keeps them
// free of '.', '*' and '>'.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Limits on a survey definition.
const (
	MaxQuestions    = 40
	MaxQuestionText = 500
	MaxAttrLen      = 100
)

// FieldProblem is one problem of a definition, at a field path such as
// "questions[2].dimension".
type FieldProblem struct {
	Path, Msg string
}

func (p FieldProblem) Error() string { return p.Path + ": " + p.Msg }

// Problems checks a survey definition and returns every problem found, each
// naming its field.
func (s SurveyPublished) Problems() []FieldProblem {
	var out []FieldProblem
	bad := func(path, format string, args ...any) {
		out = append(out, FieldProblem{path, fmt.Sprintf(format, args...)})
	}
	if !ValidID(s.SurveyID) {
		bad("survey_id", "%q: want 1-64 of a-z, 0-9, '-', '_'", s.SurveyID)
	}
	if s.Title == "" {
		bad("title", "required")
	}
	if len(s.Questions) == 0 || len(s.Questions) > MaxQuestions {
		bad("questions", "want 1-%d, got %d", MaxQuestions, len(s.Questions))
	}
	seen := map[string]bool{}
	for i, q := range s.Questions {
		at := fmt.Sprintf("questions[%d]", i)
		if !ValidID(q.ID) {
			bad(at+".id", "%q: want 1-64 of a-z, 0-9, '-', '_'", q.ID)
		} else if seen[q.ID] {
			bad(at+".id", "%q: duplicate", q.ID)
		}
		seen[q.ID] = true
		if q.Text == "" || len(q.Text) > MaxQuestionText {
			bad(at+".text", "want 1-%d characters", MaxQuestionText)
		}
		if !q.Dimension.Valid() {
			bad(at+".dimension", "%q: want trust, empowerment, motivation, engagement, enps or comment", q.Dimension)
		}
		if len(q.Driver) > MaxAttrLen {
			bad(at+".driver", "at most %d characters", MaxAttrLen)
		}
	}
	return out
}

// Validate checks a survey definition and returns every problem found,
// joined, each naming the field it is about.
func (s SurveyPublished) Validate() error {
	var errs []error
	for _, p := range s.Problems() {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// Question returns the question with the given id.
func (s SurveyPublished) Question(id string) (Question, bool) {
	for _, q := range s.Questions {
		if q.ID == id {
			return q, true
		}
	}
	return Question{}, false
}

// HasControl reports whether s holds a control character.
func HasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// Validate checks that every cohort attribute is present, short and free of
// control characters.
func (c Cohort) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"department", c.Department}, {"team", c.Team}, {"location", c.Location}, {"tenure_band", c.TenureBand},
	} {
		if f.v == "" || len(f.v) > MaxAttrLen || HasControl(f.v) {
			errs = append(errs, fmt.Errorf("cohort.%s: want 1-%d characters, no control characters", f.name, MaxAttrLen))
		}
	}
	return errors.Join(errs...)
}

// Action plans (schemas/plans.go): not anonymous, each names its author.

// PlanAuthor names who wrote a plan event: plans are not anonymous.
type PlanAuthor struct {
	TokenID string `json:"token_id"`
	Role    Role   `json:"role"`
	// Name is the token's name, as issued (empty for a manager signed in
	// through an emailed link, who has no token).
	Name string `json:"name"`
	// PersonID is the author's person id when they act as a manager.
	PersonID string `json:"person_id,omitempty"`
}

// ActionPlanned creates a team's plan for a wave.
type ActionPlanned struct {
	PlanID string `json:"plan_id"`
	WaveID string `json:"wave_id"`
	// Manager is the team's manager's person id.
	Manager      string     `json:"manager"`
	FocusDrivers []string   `json:"focus_drivers"`
	Commitments  []string   `json:"commitments"`
	Author       PlanAuthor `json:"author"`
}

// ActionUpdated replaces an open plan's focus drivers and commitments.
type ActionUpdated struct {
	PlanID       string     `json:"plan_id"`
	WaveID       string     `json:"wave_id"`
	Manager      string     `json:"manager"`
	FocusDrivers []string   `json:"focus_drivers"`
	Commitments  []string   `json:"commitments"`
	Author       PlanAuthor `json:"author"`
}

// ActionCompleted closes a plan: its commitments are done.
type ActionCompleted struct {
	PlanID  string     `json:"plan_id"`
	WaveID  string     `json:"wave_id"`
	Manager string     `json:"manager"`
	Author  PlanAuthor `json:"author"`
}
