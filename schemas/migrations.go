package schemas

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned SQL file of migrations/, split into statements.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations returns every migration in version order. File names are
// NNNN_name.sql; statements are separated by a semicolon at the end of a line.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(entries)
	var out []Migration
	for _, path := range entries {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("schemas: migration file %s: want NNNN_name.sql", path)
		}
		body, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, Statements: splitSQL(string(body))})
	}
	return out, nil
}

// splitSQL splits a file into statements, dropping comment-only lines.
func splitSQL(body string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// Statement is one SQL statement a package issues, with example arguments
// for its ? placeholders. Packages list theirs so that the compatibility
// test can run every one of them against current ClickHouse.
type Statement struct {
	Name string
	SQL  string
	Args []any
	// External is data sent beside the statement as an external table
	// (clickhouse-go's ext package), which the statement reads by name.
	External *ExternalTable
}

// ExternalTable is an external table of a Statement: its name, structure
// (columns as in CREATE TABLE) and example rows as VALUES literals. A
// compatibility check without external data creates it as a table.
type ExternalTable struct {
	Name, Structure string
	Rows            []string
}

// MigrationStatements lists the statements Migrate issues besides the
// migrations themselves.
func MigrationStatements() []Statement {
	return []Statement{
		{Name: "create schema_migrations", SQL: migrationsTable},
		{Name: "read schema_migrations", SQL: sqlAppliedMigrations},
		{Name: "column exists", SQL: sqlColumnExists, Args: []any{"answers", "proj_part"}},
	}
}

const sqlAppliedMigrations = "SELECT version FROM schema_migrations"

// migrationsTable records applied migrations.
const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY version`

// Migrate applies every migration not yet recorded in schema_migrations, in
// order. Every statement is idempotent (IF NOT EXISTS), so a migration that
// was cut short is simply run again. conn must use the target database.
func Migrate(ctx context.Context, conn driver.Conn, log *slog.Logger) error {
	return MigrateCluster(ctx, conn, nil, log)
}

// MigrateCluster is Migrate, on the cluster c when c is not nil: each
// statement is run in its cluster form (Cluster.Rewrite). It fails with one
// clear error when system.clusters of the server conn is connected to lacks
// c.Name.
func MigrateCluster(ctx context.Context, conn driver.Conn, c *Cluster, log *slog.Logger) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	form := func(stmt string) ([]string, error) { return []string{stmt}, nil }
	if c != nil {
		if err := c.Check(ctx, conn); err != nil {
			return err
		}
		form = c.Rewrite
	}
	exec := func(what, stmt string) error {
		stmts, err := form(stmt)
		if err != nil {
			return fmt.Errorf("schemas: %s: %w", what, err)
		}
		for _, s := range stmts {
			// ADD COLUMN has no IF NOT EXISTS on 18.16: a column a cut-short
			// run added already is skipped (on a cluster, the local
			// table's ALTER ON CLUSTER; the Distributed table over it is
			// dropped and recreated, which is idempotent).
			if done, err := columnAdded(ctx, conn, s); err != nil {
				return fmt.Errorf("schemas: %s: %w", what, err)
			} else if done {
				continue
			}
			if err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("schemas: %s: %w", what, err)
			}
		}
		return nil
	}
	if err := exec("create schema_migrations", migrationsTable); err != nil {
		return err
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, sqlAppliedMigrations)
	if err != nil {
		return fmt.Errorf("schemas: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[int(v)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := exec(fmt.Sprintf("migration %04d_%s statement %d", m.Version, m.Name, i+1), stmt); err != nil {
				return err
			}
		}
		b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
		if err != nil {
			return fmt.Errorf("schemas: record migration %d: %w", m.Version, err)
		}
		if err := b.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
			return err
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("schemas: record migration %d: %w", m.Version, err)
		}
		log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	return nil
}

// addColumn matches ALTER TABLE [db.]t [ON CLUSTER c] ADD COLUMN col …, one
// column a statement.
var addColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(?:[A-Za-z0-9_]+\.)?([A-Za-z0-9_]+)(?:\s+ON\s+CLUSTER\s+[A-Za-z0-9_]+)?\s+ADD\s+COLUMN\s+([A-Za-z0-9_]+)\s`)

const sqlColumnExists = "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?"

// columnAdded reports whether stmt adds a column that the table has already:
// the idempotent ADD COLUMN IF NOT EXISTS, which ClickHouse 18.16 lacks.
func columnAdded(ctx context.Context, conn driver.Conn, stmt string) (bool, error) {
	table, col, ok := AddedColumn(stmt)
	if !ok {
		return false, nil
	}
	var n uint64
	if err := conn.QueryRow(ctx, sqlColumnExists, table, col).Scan(&n); err != nil {
		return false, fmt.Errorf("look up column %s.%s: %w", table, col, err)
	}
	return n > 0, nil
}

// AddedColumn returns the table and column of an ALTER TABLE … ADD COLUMN
// statement, which Migrate runs only while the column does not exist.
func AddedColumn(stmt string) (table, column string, ok bool) {
	m := addColumn.FindStringSubmatch(stmt)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ProjectionTables lists the tables a replay empties before projecting the
// stream again from its start.
var ProjectionTables = []string{"answers", "comments", "comment_thread", "action_plans", "surveys", "waves", "wave_thresholds", "wave_closures", "wave_seals", "invitations", "roster_events", "api_tokens", "api_token_revocations", "projected_events", "projector_checkpoint"}
