// Command trustpulse runs the trustpulse engagement survey platform and its
// admin tasks. See `trustpulse help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `trustpulse: anonymous engagement pulse surveys, event-sourced.

Usage:
  trustpulse serve [--target=all|ingest|projector|query] [flags]   run the services
  trustpulse demo [flags]                       run everything with a seeded demo organisation
  trustpulse migrate [flags]                    apply ClickHouse migrations
  trustpulse replay [flags]                     rebuild every projection from the stream
  trustpulse survey publish --org ORG --file SURVEY.json
  trustpulse wave open --org ORG --wave WAVE --survey SURVEY [--closes-in 168h] [--reminders 3,5]
  trustpulse wave close --org ORG --wave WAVE
  trustpulse invite --org ORG --wave WAVE [--department D] [--team T] [--location L]
                                                email the roster (or the audience) single-use survey links
  trustpulse invite --org ORG --wave WAVE --cohorts COHORTS.csv   print links instead, one per CSV row
  trustpulse schedule set --org ORG --schedule S --survey SURVEY [--every-weeks 2] [--open-days 5] [--drivers N]
                                                pulse waves that open, invite, remind and close by themselves
  trustpulse remind --org ORG --wave WAVE       email a new link to those who have not answered
  trustpulse mail failures --org ORG            emails that could not be delivered
  trustpulse org set --org ORG [--sender-name NAME] [--threshold K]   the sender name of its emails, its threshold
  trustpulse token issue --org ORG --role leader|analyst|admin [--name N]   an API token for the query API
  trustpulse token revoke --org ORG --id ID
  trustpulse roster import --org ORG FILE.csv   import employees; missing ones leave

Every command takes the common flags (trustpulse serve -h lists them); each
flag can also be set by its TRUSTPULSE_* environment variable.
Admin commands use the servers of a running 'trustpulse serve' with the same
--data-dir, or start the local ones themselves when none runs.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "trustpulse:", oneLine(err))
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ error }

// startError marks a failure of serve to start, its flags' too (exit
// status 1): a supervisor that restarts serve sees one kind of failure.
type startError struct{ error }

func (e startError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var se startError
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 2
	case errors.As(err, &se):
		return 1
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// oneLine is err's message on one line (joined errors are one a line).
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// run dispatches a command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	if (cmd == "survey" || cmd == "wave" || cmd == "roster" || cmd == "mail" || cmd == "schedule" || cmd == "org" || cmd == "token") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(ctx, rest, stderr)
	case "demo":
		return demoCmd(ctx, rest, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, rest, stdout, stderr)
	case "replay":
		return replayCmd(ctx, rest, stdout, stderr)
	case "survey publish":
		return surveyPublishCmd(ctx, rest, stdout, stderr)
	case "wave open":
		return waveOpenCmd(ctx, rest, stdout, stderr)
	case "wave close":
		return waveCloseCmd(ctx, rest, stdout, stderr)
	case "invite":
		return inviteCmd(ctx, rest, stdout, stderr)
	case "token issue":
		return tokenIssueCmd(ctx, rest, stdout, stderr)
	case "token revoke":
		return tokenRevokeCmd(ctx, rest, stdout, stderr)
	case "org set":
		return orgSetCmd(ctx, rest, stdout, stderr)
	case "schedule set":
		return scheduleSetCmd(ctx, rest, stdout, stderr)
	case "remind":
		return remindCmd(ctx, rest, stdout, stderr)
	case "mail failures":
		return mailFailuresCmd(ctx, rest, stdout, stderr)
	case "roster import":
		return rosterImportCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

// parse parses the common flags plus the command's own into cfg, validates
// and returns a logger. A command's own flag wins over a common flag of the
// same name (org set's --threshold is the organisation's, not the
// deployment's default).
func parse(name string, args []string, stderr io.Writer, own func(*flag.FlagSet)) (Config, *slog.Logger, error) {
	var cfg Config
	fs := flag.NewFlagSet("trustpulse "+name, flag.ContinueOnError)
	// The flag package prints every flag after a mistake; only -h shows
	// them, a mistake is one line (main prints it).
	fs.SetOutput(io.Discard)
	if own != nil {
		own(fs)
	}
	common := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.register(common)
	common.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return cfg, nil, err
		}
		return cfg, nil, usageError{fmt.Errorf("%s: %w (trustpulse %s -h lists the flags)", name, err, name)}
	}
	if fs.NArg() > 0 {
		return cfg, nil, usageError{fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, usageError{fmt.Errorf("invalid configuration: %s", oneLine(err))}
	}
	lvl, _ := cfg.level()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return cfg, log, nil
}

// serveCmd runs serve until ctx ends. Every failure to start is one line
// and exit status 1 (startError).
func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, log, err := parse("serve", args, stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return startError{err}
	}
	m, err := Open(ctx, cfg, log)
	if err != nil {
		return startError{err}
	}
	log.Info("trustpulse serving", "target", cfg.Target, "ingest", m.IngestURL, "query", m.QueryURL, "admin", m.AdminURL, "health", m.HealthURL, "metrics", m.MetricsURL)
	runErr := m.Run(ctx)
	log.Info("shutting down")
	return errors.Join(runErr, m.Close())
}
