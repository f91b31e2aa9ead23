package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/trustpulse/trustpulse/deploy/localch"
)

// pgBin is where Debian's postgresql-15 package puts the server.
const pgBin = "/usr/lib/postgresql/15/bin"

// postgres is a private PostgreSQL 15 cluster holding the same answers as
// ClickHouse in the table a typical survey tool keeps its responses in,
// with sensible indexes: the familiar alternative.
type postgres struct {
	dir, version string
	port         int
	conn         *pgx.Conn
}

// asPostgres runs a server binary as the postgres user when we are root
// (PostgreSQL refuses to run as root).
func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pgBin, name)}, args...)...)
	}
	return exec.Command(filepath.Join(pgBin, name), args...)
}

func startPostgres(ctx context.Context, dir string) (*postgres, error) {
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		return nil, fmt.Errorf("PostgreSQL 15 is not installed (%v): `make bench` installs Debian's postgresql-15", err)
	}
	port, err := localch.FreePort()
	if err != nil {
		return nil, err
	}
	p := &postgres{dir: dir, port: port}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "-R", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v %s", dir, err, out)
		}
	}
	if out, err := asPostgres("initdb", "-D", dir, "-A", "trust", "-U", "bench", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v %s", err, out)
	}
	// Memory as a small dedicated server on this machine would have it.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c work_mem=64MB -c max_parallel_workers_per_gather=2 -c fsync=off -c synchronous_commit=off", port, dir)
	if out, err := asPostgres("pg_ctl", "-D", dir, "-o", opts, "-w", "-l", filepath.Join(dir, "server.log"), "start").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v %s", err, out)
	}
	if p.conn, err = pgx.Connect(ctx, fmt.Sprintf("postgres://bench@127.0.0.1:%d/postgres", port)); err != nil {
		return nil, err
	}
	_ = p.conn.QueryRow(ctx, "SHOW server_version").Scan(&p.version)
	_, err = p.conn.Exec(ctx, `CREATE TABLE answers (org text, wave_id text, question_id text, dimension text, value smallint,
		response_id uuid, department text, team text, location text, tenure_band text, response_date date);
		CREATE TABLE invitations (org text, wave_id text, department text, team text, location text, tenure_band text)`)
	return p, err
}

func (p *postgres) stop() {
	if p.conn != nil {
		p.conn.Close(context.Background())
	}
	_ = asPostgres("pg_ctl", "-D", p.dir, "-m", "fast", "stop").Run()
}

// load copies the answers of waves (and the invitations of the last) from
// ClickHouse, then (re)builds the indexes and statistics.
func (p *postgres) load(ctx context.Context, e *env, waves []string) (int, error) {
	for _, idx := range []string{"answers_wave", "answers_wave_dept", "answers_wave_question", "invitations_wave"} {
		_, _ = p.conn.Exec(ctx, "DROP INDEX IF EXISTS "+idx)
	}
	total := 0
	for _, w := range waves {
		rows, err := e.ch.Query(ctx, `SELECT question_id, dimension, value, response_id, department, team, location, tenure_band, response_date
			FROM answers WHERE org = ? AND wave_id = ?`, benchOrg, w)
		if err != nil {
			return 0, err
		}
		src := &copySource{rows: rows, scan: func(r driver.Rows) ([]any, error) {
			var q, dim, dept, team, loc, tenure string
			var v uint8
			var id uuid.UUID
			var day time.Time
			err := r.Scan(&q, &dim, &v, &id, &dept, &team, &loc, &tenure, &day)
			return []any{benchOrg, w, q, dim, int16(v), id, dept, team, loc, tenure, day}, err
		}}
		n, err := p.conn.CopyFrom(ctx, pgx.Identifier{"answers"}, []string{"org", "wave_id", "question_id", "dimension", "value", "response_id", "department", "team", "location", "tenure_band", "response_date"}, src)
		rows.Close()
		if err != nil {
			return 0, fmt.Errorf("copy wave %s: %w", w, err)
		}
		total += int(n)
	}
	last := waves[len(waves)-1]
	rows, err := e.ch.Query(ctx, `SELECT department, team, location, tenure_band FROM invitations WHERE org = ? AND wave_id = ?`, benchOrg, last)
	if err != nil {
		return 0, err
	}
	src := &copySource{rows: rows, scan: func(r driver.Rows) ([]any, error) {
		var dept, team, loc, tenure string
		err := r.Scan(&dept, &team, &loc, &tenure)
		return []any{benchOrg, last, dept, team, loc, tenure}, err
	}}
	if _, err := p.conn.CopyFrom(ctx, pgx.Identifier{"invitations"}, []string{"org", "wave_id", "department", "team", "location", "tenure_band"}, src); err != nil {
		return 0, err
	}
	rows.Close()
	for _, sql := range []string{
		"CREATE INDEX answers_wave ON answers (org, wave_id, dimension)",
		"CREATE INDEX answers_wave_dept ON answers (org, wave_id, department)",
		"CREATE INDEX answers_wave_question ON answers (org, wave_id, question_id)",
		"CREATE INDEX invitations_wave ON invitations (org, wave_id)",
		"VACUUM ANALYZE answers", "VACUUM ANALYZE invitations",
	} {
		if _, err := p.conn.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("postgres: %s: %w", sql, err)
		}
	}
	return total, nil
}

// copySource feeds ClickHouse rows to pgx's COPY.
type copySource struct {
	rows driver.Rows
	scan func(driver.Rows) ([]any, error)
	cur  []any
	err  error
}

func (c *copySource) Next() bool {
	if c.err != nil || !c.rows.Next() {
		return false
	}
	c.cur, c.err = c.scan(c.rows)
	return c.err == nil
}

func (c *copySource) Values() ([]any, error) { return c.cur, nil }

func (c *copySource) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.rows.Err()
}

// pgQueries are the endpoints' aggregates in PostgreSQL's SQL, for a wave.
func pgQueries(wave string) map[string][]string {
	w := "'" + wave + "'"
	stats := `count(DISTINCT response_id), avg(value), var_samp(value), count(*) FILTER (WHERE value >= 4), count(*) FILTER (WHERE value = 3), count(*) FILTER (WHERE value <= 2), count(*)`
	corr := func(qs string) string {
		return `SELECT corr(o, d), count(*) FROM (SELECT response_id, avg(value) FILTER (WHERE dimension = 'engagement') AS o,
			avg(value) FILTER (WHERE question_id IN (` + qs + `)) AS d FROM answers WHERE org = 'bench' AND wave_id = ` + w + ` GROUP BY response_id) t
			WHERE o IS NOT NULL AND d IS NOT NULL`
	}
	overview := []string{
		`SELECT count(DISTINCT response_id) FROM answers WHERE org = 'bench' AND wave_id = ` + w,
		`SELECT dimension, ` + stats + ` FROM answers WHERE org = 'bench' AND wave_id = ` + w + ` GROUP BY dimension`,
		`SELECT question_id, ` + stats + ` FROM answers WHERE org = 'bench' AND wave_id = ` + w + ` GROUP BY question_id`,
	}
	return map[string][]string{
		"overview (scores of a wave)": overview,
		"heatmap (by department)": append(overview,
			`SELECT department, count(DISTINCT response_id) FROM answers WHERE org = 'bench' AND wave_id = `+w+` GROUP BY department`,
			`SELECT department, dimension, `+stats+` FROM answers WHERE org = 'bench' AND wave_id = `+w+` GROUP BY department, dimension`),
		"trends (every wave)": {`SELECT wave_id, dimension, ` + stats + ` FROM answers WHERE org = 'bench' GROUP BY wave_id, dimension`},
		"driver impact":       {corr("'autonomy'"), corr("'manager-support'"), corr("'transparency'"), corr("'recognition'")},
		"participation (by department)": {
			`SELECT department, count(*) FROM invitations WHERE org = 'bench' AND wave_id = ` + w + ` GROUP BY department`,
			`SELECT department, count(DISTINCT response_id) FROM answers WHERE org = 'bench' AND wave_id = ` + w + ` GROUP BY department`,
		},
	}
}

// bench runs each endpoint's statements n times and sets its PostgreSQL
// latencies.
func (p *postgres) bench(ctx context.Context, wave string, n int, results []queryResult) error {
	qs := pgQueries(wave)
	for i := range results {
		var lat latencies
		for range n {
			start := time.Now()
			for _, sql := range qs[results[i].name] {
				rows, err := p.conn.Query(ctx, sql)
				if err != nil {
					return fmt.Errorf("postgres: %w: %s", err, sql)
				}
				for rows.Next() {
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
			}
			lat = append(lat, time.Since(start))
		}
		results[i].pgP50, results[i].pgP99 = ms(lat.quantile(.5)), ms(lat.quantile(.99))
	}
	return nil
}
