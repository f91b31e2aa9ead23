package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestOrgSetThresholdCommand runs `trustpulse org set --threshold` as the
// binary does, against a real NATS server: the command's own --threshold
// (the organisation's) replaces the common one (the deployment's default)
// instead of panicking with "flag redefined".
func TestOrgSetThresholdCommand(t *testing.T) {
	srv, _, js := testenv.NATS(t)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	args := []string{"org", "set", "--org", "acme", "--threshold", "7", "--nats-url", srv.URL(), "--data-dir", t.TempDir()}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("org set: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "at least 7 respondents") {
		t.Errorf("org set printed %q", stdout.String())
	}
	cat, err := ingest.StartCatalog(ctx, js, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Stop()
	if got := cat.Threshold("acme"); got != 7 {
		t.Errorf("acme's threshold %d after org set --threshold 7", got)
	}

	t.Run("ErrOutOfRange", func(t *testing.T) {
		stdout.Reset()
		stderr.Reset()
		args := []string{"org", "set", "--org", "acme", "--threshold", "11", "--nats-url", srv.URL(), "--data-dir", t.TempDir()}
		if err := run(ctx, args, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "threshold 11") {
			t.Errorf("org set --threshold 11: %v", err)
		}
	})
	t.Run("Help", func(t *testing.T) {
		stderr.Reset()
		_ = run(ctx, []string{"org", "set", "-h"}, &stdout, &stderr)
		if n := strings.Count(stderr.String(), "-threshold "); n != 1 {
			t.Errorf("org set -h lists -threshold %d times:\n%s", n, stderr.String())
		}
		if !strings.Contains(stderr.String(), "-nats-url") {
			t.Errorf("org set -h lacks the common flags:\n%s", stderr.String())
		}
	})
}

// TestAdminCommandsBadCSV: a bare quote in the first field of a data row,
// which once panicked `roster import` and `invite --cohorts`, is an error
// that names its line, before any server is asked.
func TestAdminCommandsBadCSV(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		file, csv string
		args      func(path string) []string
	}{
		"RosterImport": {"people.csv", strings.Join(ingest.RosterColumns, ",") + "\ne\"1,ana@example.com,Ana,Eng,P,Berlin,,2021-04-01\n",
			func(path string) []string {
				return []string{"roster", "import", "--org", "acme", "--data-dir", dir, path}
			}},
		"InviteCohorts": {"cohorts.csv", strings.Join(ingest.CohortColumns, ",") + "\nEng,P,Berlin,1-2y\nE\"ng,P,Berlin,1-2y\n",
			func(path string) []string {
				return []string{"invite", "--org", "acme", "--wave", "w1", "--data-dir", dir, "--cohorts", path}
			}},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.csv), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			args := tc.args(path)
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), `bare " in non-quoted-field`) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("%v: %v\n%s", args, err, stderr.String())
			}
			if strings.Contains(err.Error(), "example.com") {
				t.Errorf("the error echoes an email: %v", err)
			}
		})
	}
}

// TestReplayCommandRepartitions runs `trustpulse replay
// --projector-partitions 3` on an unpartitioned store, as the binary does:
// the stream is split into 3 from then on, every partition has its
// checkpoint, and the events are projected once.
func TestReplayCommandRepartitions(t *testing.T) {
	srv, _, js := testenv.NATS(t)
	_, chCfg := testenv.ClickHouse(t)
	ctx := context.Background()
	for _, org := range []string{"acme", "globex", "initech"} {
		env, err := schemas.NewEnvelope(schemas.OrgConfiguredType, org, time.Now(), schemas.OrgConfigured{})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := env.Marshal()
		if _, err := js.Publish(ctx, schemas.Subject(org, env.Type), data); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--projector-partitions", "3", "--nats-url", srv.URL(), "--clickhouse-addr", chCfg.Addr,
		"--clickhouse-database", chCfg.Database, "--data-dir", t.TempDir()}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := schemas.StreamPartitions(stream.CachedInfo().Config); n != 3 || err != nil {
		t.Fatalf("after the replay the stream has %d partitions (%v), want 3", n, err)
	}
	ch, _ := deploy.OpenClickHouse(ctx, chCfg)
	defer ch.Close()
	var parts, events uint64
	if err := ch.QueryRow(ctx, "SELECT uniqExact(consumer) FROM projector_checkpoint WHERE consumer LIKE 'projector-clickhouse-p%' AND seq = 3").Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(ctx, "SELECT count() FROM projected_events").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if parts != 3 || events != 3 {
		t.Fatalf("%d partition checkpoints at 3 and %d projected events, want 3 and 3", parts, events)
	}
	// A command with the old count is refused, saying how.
	args = []string{"org", "set", "--org", "acme", "--threshold", "7", "--nats-url", srv.URL(), "--data-dir", t.TempDir()}
	if err := run(ctx, args, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--projector-partitions 3") {
		t.Fatalf("org set without --projector-partitions 3: %v", err)
	}
}
