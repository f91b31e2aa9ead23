package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// adminSession is what an admin command works with: the servers of a running
// trustpulse (or local ones it started) and the ingest admin.
type adminSession struct {
	stack   *deploy.Stack
	catalog *ingest.Catalog
	admin   *ingest.Admin
}

func openAdmin(ctx context.Context, cfg Config, log *slog.Logger) (*adminSession, error) {
	sc := cfg.stackConfig(false)
	sc.NeedNATS, sc.NeedClickHouse = true, false
	st, err := deploy.Open(ctx, sc, log)
	if err != nil {
		return nil, err
	}
	ledger, err := ingest.OpenLedger(ctx, st.JS)
	if err != nil {
		st.Close()
		return nil, err
	}
	ledger.Replicas = cfg.NATSReplicas
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cat, err := ingest.StartCatalog(cctx, st.JS, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	cat.DefaultThreshold = cfg.Threshold
	admin := ingest.NewAdmin(st.JS, ledger, cat, time.Now)
	admin.PublicURL = cfg.publicURL()
	return &adminSession{stack: st, catalog: cat, admin: admin}, nil
}

// withAdmin runs fn with an admin session, closed afterwards.
func withAdmin(ctx context.Context, cfg Config, log *slog.Logger, fn func(*ingest.Admin) error) error {
	sess, err := openAdmin(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sess.Close()
	return fn(sess.admin)
}

func (s *adminSession) Close() {
	s.catalog.Stop()
	s.stack.Close()
}

func required(name, v string) error {
	if v == "" {
		return usageError{fmt.Errorf("--%s is required", name)}
	}
	return nil
}

func surveyPublishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, file string
	cfg, log, err := parse("survey publish", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&file, "file", "", "survey definition (YAML or JSON; see deploy/examples)")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("file", file)); err != nil {
		return err
	}
	s, err := readSurvey(file)
	if err != nil {
		return err
	}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error { return a.PublishSurvey(ctx, org, s) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published survey %s (%d questions) for %s\n", s.SurveyID, len(s.Questions), org)
	return nil
}

// readSurvey reads a survey definition file (YAML or JSON).
func readSurvey(path string) (schemas.SurveyPublished, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return schemas.SurveyPublished{}, err
	}
	return ingest.ParseSurveyFile(path, data)
}

func waveOpenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, wave, survey string
	var closesIn time.Duration
	var reminders string
	cfg, log, err := parse("wave open", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&wave, "wave", "", "new wave id")
		fs.StringVar(&survey, "survey", "", "survey id")
		fs.DurationVar(&closesIn, "closes-in", 7*24*time.Hour, "how long the wave stays open")
		fs.StringVar(&reminders, "reminders", "3,5", "days after opening on which those who have not answered are reminded; empty for none")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("wave", wave), required("survey", survey)); err != nil {
		return err
	}
	if closesIn <= 0 {
		return usageError{errors.New("--closes-in must be positive")}
	}
	var days []int
	for _, f := range strings.FieldsFunc(reminders, func(r rune) bool { return r == ',' || r == ' ' }) {
		d, err := strconv.Atoi(f)
		if err != nil || d < 1 || time.Duration(d)*24*time.Hour >= closesIn {
			return usageError{fmt.Errorf("--reminders %q: want days after opening, each before the wave closes", reminders)}
		}
		days = append(days, d)
	}
	now := time.Now().UTC()
	w := schemas.WaveOpened{WaveID: wave, SurveyID: survey, OpensAt: now, ClosesAt: now.Add(closesIn), ReminderDays: days}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error { return a.OpenWave(ctx, org, w) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "opened wave %s of survey %s for %s until %s\n", wave, survey, org, now.Add(closesIn).Format(time.RFC3339))
	return nil
}

func waveCloseCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, wave string
	cfg, log, err := parse("wave close", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&wave, "wave", "", "wave id")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("wave", wave)); err != nil {
		return err
	}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error { return a.CloseWave(ctx, org, wave) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "closed wave %s of %s; its scores are released once projected\n", wave, org)
	return nil
}

func inviteCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, wave, file string
	var aud ingest.Audience
	cfg, log, err := parse("invite", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&wave, "wave", "", "wave id")
		fs.StringVar(&file, "cohorts", "", "instead of emailing the roster: a CSV with header department,team,location,tenure_band, one row per invitee; the links are printed")
		fs.StringVar(&aud.Department, "department", "", "invite only this department of the roster")
		fs.StringVar(&aud.Team, "team", "", "invite only this team of the roster")
		fs.StringVar(&aud.Location, "location", "", "invite only this location of the roster")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("wave", wave)); err != nil {
		return err
	}
	if file == "" {
		var n ingest.Invited
		if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) { n, err = a.InviteRoster(ctx, org, wave, aud); return err }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "invited %d people of %s to wave %s; their emails are queued and sent by 'trustpulse serve'\n", n.Invited, org, wave)
		printInvited(stdout, n)
		return nil
	}
	cohorts, err := readCohorts(file)
	if err != nil {
		return err
	}
	var tokens []string
	ierr := withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) {
		tokens, err = a.IssueInvitations(ctx, org, wave, cohorts)
		return err
	})
	if ierr != nil && len(tokens) == 0 {
		return ierr
	}
	if ierr != nil {
		// The links issued before the error are valid and counted: print them.
		defer fmt.Fprintf(stdout, "# only %d of the %d links were issued; the ones above are valid\n", len(tokens), len(cohorts))
	}
	fmt.Fprintf(stdout, "# %d single-use survey links for wave %s of %s, one per invitee.\n", len(tokens), wave, org)
	fmt.Fprintf(stdout, "# The token is the last part of a link; clients can also post to %s/v1/responses.\n", cfg.publicURL())
	for _, t := range tokens {
		fmt.Fprintf(stdout, "%s/s/%s\n", cfg.publicURL(), t)
	}
	return ierr
}

// printInvited says how the invitees' cohorts were stored.
func printInvited(w io.Writer, n ingest.Invited) {
	if n.Generalised > 0 {
		fmt.Fprintf(w, "%d of them have a coarser cohort stored than their own, so that no stored cohort is shared by fewer invitees than the wave's threshold (docs/anonymity.md, \"Cohorts in the stores\")\n", n.Generalised)
	}
	if n.HeldBack > 0 {
		fmt.Fprintf(w, "%d people were not invited: too few invitees would share their cohort; they are tried again the next time this wave is invited\n", n.HeldBack)
	}
}

func scheduleSetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, first, reminders string
	var sc schemas.ScheduleSet
	cfg, log, err := parse("schedule set", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&sc.ScheduleID, "schedule", "", "schedule id; its waves are named SCHEDULE-001, SCHEDULE-002 ...")
		fs.StringVar(&sc.SurveyID, "survey", "", "survey id")
		fs.IntVar(&sc.EveryWeeks, "every-weeks", 2, "a wave opens every this many weeks")
		fs.IntVar(&sc.OpenDays, "open-days", 5, "each wave stays open this many days")
		fs.StringVar(&reminders, "reminders", "3", "days after opening on which those who have not answered are reminded")
		fs.IntVar(&sc.DriversPerPulse, "drivers", 0, "ask this many drivers per pulse, rotating through all of them; 0 asks everything")
		fs.StringVar(&first, "first-opens", "", "when the first wave opens, RFC 3339; default now")
		fs.StringVar(&sc.Audience.Department, "department", "", "invite only this department")
		fs.StringVar(&sc.Audience.Team, "team", "", "invite only this team")
		fs.StringVar(&sc.Audience.Location, "location", "", "invite only this location")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("schedule", sc.ScheduleID), required("survey", sc.SurveyID)); err != nil {
		return err
	}
	sc.FirstOpensAt = time.Now().UTC()
	if first != "" {
		if sc.FirstOpensAt, err = time.Parse(time.RFC3339, first); err != nil {
			return usageError{fmt.Errorf("--first-opens %q: want RFC 3339, e.g. 2026-12-01T09:00:00Z", first)}
		}
	}
	for _, f := range strings.FieldsFunc(reminders, func(r rune) bool { return r == ',' || r == ' ' }) {
		d, err := strconv.Atoi(f)
		if err != nil {
			return usageError{fmt.Errorf("--reminders %q: want days, e.g. 3,5", reminders)}
		}
		sc.ReminderDays = append(sc.ReminderDays, d)
	}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error { return a.SetSchedule(ctx, org, sc) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schedule %s of %s: a wave of %s every %d week(s) from %s, open %d day(s); 'trustpulse serve' opens them and invites the roster\n",
		sc.ScheduleID, org, sc.SurveyID, sc.EveryWeeks, sc.FirstOpensAt.Format(time.RFC3339), sc.OpenDays)
	return nil
}

func orgSetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org string
	var o schemas.OrgConfigured
	cfg, log, err := parse("org set", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&o.SenderName, "sender-name", "", "display name of the organisation's survey emails, e.g. \"Acme People Team\" (unchanged when empty)")
		fs.IntVar(&o.Threshold, "threshold", 0, "reporting threshold k, 3-10, of waves opened from now on (unchanged when 0)")
	})
	if err != nil {
		return err
	}
	if err := required("org", org); err != nil {
		return err
	}
	if o.SenderName == "" && o.Threshold == 0 {
		return usageError{errors.New("give --sender-name, --threshold or both")}
	}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error {
		if err := a.ConfigureOrg(ctx, org, o); err != nil {
			return err
		}
		o = a.Org(org)
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: survey emails come from %q; waves opened from now on report from at least %d respondents\n", org, o.SenderName, o.Threshold)
	return nil
}

func tokenIssueCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, role, name, employee string
	cfg, log, err := parse("token issue", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&role, "role", "analyst", "leader, analyst, admin or manager")
		fs.StringVar(&name, "name", "", "what the token is for, e.g. \"people analytics notebook\"")
		fs.StringVar(&employee, "employee", "", "with --role manager: the roster's employee_id of the manager the token acts for")
	})
	if err != nil {
		return err
	}
	if err := required("org", org); err != nil {
		return err
	}
	switch {
	case role == string(schemas.RoleManager) && employee == "":
		return usageError{errors.New("--role manager needs --employee ID (the roster's employee_id of the manager)")}
	case role != string(schemas.RoleManager) && employee != "":
		return usageError{errors.New("--employee binds a manager's token; use it with --role manager")}
	}
	var token, id, who string
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) {
		if employee != "" {
			token, id, who, err = a.IssueManagerToken(ctx, org, employee, name)
			return err
		}
		token, id, err = a.IssueToken(ctx, org, schemas.Role(role), name)
		return err
	}); err != nil {
		return err
	}
	if who != "" {
		fmt.Fprintf(stdout, "# manager token for %s (%s): their team's results and the organisation overall\n", who, employee)
	}
	fmt.Fprintf(stdout, "# %s token %s for %s; it is shown only now. Revoke: trustpulse token revoke --org %s --id %s\n%s\n", role, id, org, org, id, token)
	return nil
}

func tokenRevokeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, id string
	cfg, log, err := parse("token revoke", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&id, "id", "", "token id, as printed when it was issued")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("id", id)); err != nil {
		return err
	}
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) error { return a.RevokeToken(ctx, org, id) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked token %s of %s (refused within seconds)\n", id, org)
	return nil
}

func remindCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org, wave string
	cfg, log, err := parse("remind", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
		fs.StringVar(&wave, "wave", "", "wave id")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("wave", wave)); err != nil {
		return err
	}
	var n int
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) { n, err = a.Remind(ctx, org, wave); return err }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reminded %d people of %s who have not answered wave %s\n", n, org, wave)
	return nil
}

func mailFailuresCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org string
	cfg, log, err := parse("mail failures", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
	})
	if err != nil {
		return err
	}
	if err := required("org", org); err != nil {
		return err
	}
	var failures []schemas.MailFailure
	if err := withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) { failures, err = a.MailFailures(ctx, org); return err }); err != nil {
		return err
	}
	if len(failures) == 0 {
		fmt.Fprintf(stdout, "no undeliverable emails for %s\n", org)
		return nil
	}
	for _, f := range failures {
		fmt.Fprintf(stdout, "%s\twave %s\t%s\t%s\n", f.At.Format(time.RFC3339), f.WaveID, f.To, f.Reason)
	}
	return nil
}

// readCohorts reads a cohorts CSV file (ingest.ParseCohorts).
func readCohorts(path string) ([]schemas.Cohort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cohorts, err := ingest.ParseCohorts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cohorts, nil
}

func rosterImportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var org string
	// The file comes last: trustpulse roster import --org acme people.csv
	var file string
	if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") {
		args, file = args[:n-1], args[n-1]
	}
	cfg, log, err := parse("roster import", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&org, "org", "", "organisation id")
	})
	if err != nil {
		return err
	}
	if err := errors.Join(required("org", org), required("FILE (last argument)", file)); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(stdout, "validating %s ...\n", file)
	rows, err := ingest.ParseRoster(f, time.Now().UTC())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d employees valid; importing\n", len(rows))
	var sum ingest.RosterSummary
	err = withAdmin(ctx, cfg, log, func(a *ingest.Admin) (err error) {
		sum, err = a.ImportRoster(ctx, org, rows, func(done, total int) { fmt.Fprintf(stdout, "\rimported %d of %d", done, total) })
		return err
	})
	fmt.Fprintln(stdout)
	if err != nil {
		return fmt.Errorf("import stopped (run it again to finish): %w", err)
	}
	fmt.Fprintf(stdout, "roster of %s: %d joined, %d updated, %d left, %d unchanged\n", org, sum.Joined, sum.Updated, sum.Left, sum.Unchanged)
	return nil
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, log, err := parse("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	sc := cfg.stackConfig(false)
	sc.NeedNATS, sc.NeedClickHouse = false, true
	st, err := deploy.Open(ctx, sc, log) // Open runs the migrations
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stdout, "ClickHouse %s database %s is migrated\n", st.ClickHouseAddr, cfg.ClickHouseDatabase)
	return nil
}

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, log, err := parse("replay", args, stderr, nil)
	if err != nil {
		return err
	}
	if cfg.ClickHouseCluster != "" {
		// It truncates the tables by name: on a cluster those are the
		// Distributed ones, and the _local tables would have to be
		// truncated ON CLUSTER.
		return fmt.Errorf("replay: not supported with --clickhouse-cluster yet (docs/operations.md, ClickHouse cluster)")
	}
	sc := cfg.stackConfig(false)
	sc.NeedNATS, sc.NeedClickHouse = true, true
	sc.Repartition = true // the replay changes the stream's partition count to --projector-partitions
	st, err := deploy.Open(ctx, sc, log)
	if err != nil {
		return err
	}
	defer st.Close()
	pc := cfg.projectorConfig()
	pc.PartitionIDs = nil // a replay holds every partition
	p := projector.New(st.JS, st.CH, pc, log)
	start := time.Now()
	p.Progress = func(done, last uint64) {
		pct := 100.0
		if last > 0 {
			pct = 100 * float64(done) / float64(last)
		}
		fmt.Fprintf(stdout, "\rreplayed %d of %d events (%.0f%%)", done, last, pct)
	}
	if err := p.Rebuild(ctx); err != nil {
		if errors.Is(err, projector.ErrLeaseHeld) {
			return fmt.Errorf("%w: stop 'trustpulse serve' (or run it with a --target without the projector) and replay again", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "\nreplay done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
