//go:build chdb

// The compatibility test runs every migration and every statement trustpulse
// issues against the current ClickHouse engine, in-process through chDB
// (libchdb.so, ClickHouse 26.5), next to the ClickHouse 18.16 server that the
// other tests use. Run it with `make test-compat`, which fetches the library
// and sets CHDB_LIB_PATH.
package schemas_test

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	chdb "github.com/chdb-io/chdb-go/chdb-purego"
	"github.com/go-faster/city"

	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// sampleRows holds one row per table, in the column order of the INSERTs.
var sampleRows = map[string]string{
	"surveys":               `('acme', 's1', 'Pulse', ['q1', 'n1'], ['Q', 'N'], ['trust', 'enps'], ['support', ''], 1, 0)`,
	"waves":                 `('acme', 'w1', 's1', '2026-11-01 00:00:00', '2026-11-08 00:00:00', 2, 0)`,
	"wave_closures":         `('acme', 'w1', 90, 0)`,
	"wave_thresholds":       `('acme', 'w1', 7, 2, 0)`,
	"wave_seals":            `('acme', 'w1', 92, 0)`,
	"roster_events":         `('acme', 'p1', 'EmployeeJoined', 'Engineering', 'Platform', 'Berlin', '2024-03-01', '1970-01-01', '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', 5, 0)`,
	"api_tokens":            `('acme', 't1', 'abc123', 'analyst', 'laptop', '', 6, 0)`,
	"api_token_revocations": `('acme', 't0', 7, 0)`,
	"invitations":           `('acme', 'w1', 'Engineering', 'Platform', 'Berlin', '1-2y', ['7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01'], '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', 3, 0)`,
	"answers":               `('acme', 'w1', 's1', 'q1', 'trust', 4, '5b0b8f3c-50a5-4f3a-9b53-8a0e0f6a5a11', 'Engineering', 'Platform', 'Berlin', '1-2y', ['7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01'], '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', '2026-11-02', 4, 0), ('acme', 'w1', 's1', 'n1', 'enps', 9, '5b0b8f3c-50a5-4f3a-9b53-8a0e0f6a5a11', 'Engineering', 'Platform', 'Berlin', '1-2y', ['7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01'], '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', '2026-11-02', 4, 0)`,
	"projected_events":      `('e1', 4, 0)`,
	"comments":              `('acme', 'w1', 's1', 'c1', 'More focus time', 'Engineering', 'Platform', 'Berlin', '1-2y', ['7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01'], '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', '7d1c0c8e-1f7e-4a51-9d0e-2b1f0c3d4e5f', 'ab12', 4, 0)`,
	"action_plans":          `('acme', 'p1', 'w1', '7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01', 'planned', ['support'], ['Weekly one-to-ones'], 't1', 'analyst', 'people ops', '', '2026-11-09 10:00:00', 9, 0)`,
	"comment_thread":        `('acme', 'w1', '7d1c0c8e-1f7e-4a51-9d0e-2b1f0c3d4e5f', 'r1', 'reply', 'Thank you', 't1', 'analyst', '', '2026-11-03', 8, 0)`,
	"projector_checkpoint":  `('projector-clickhouse', 95, '2026-11-02 00:00:00')`,
	"served_cells":          `('acme', 'w1', 'dim:trust', 'department', 'Engineering', 7, '2026-11-02 00:00:00')`,
	"served_sets":           `('acme', 'w1', 'w1,w2', 'dim:trust', 'department&team', 'Engineering\x1EPlatform\x1FCore', 7, 0, '2026-11-02 00:00:00')`,
	"schema_migrations":     `(1, 'events_ledger', '2026-11-02 00:00:00')`,
}

// withExternal runs query with x, a statement's external table, created
// as a table for it (chDB takes no external data) and dropped after.
func withExternal(run func(name, sql string) string, x *schemas.ExternalTable, query func() string) string {
	if x == nil {
		return query()
	}
	run("create "+x.Name, "CREATE TABLE "+x.Name+" ("+x.Structure+") ENGINE = Memory")
	defer run("drop "+x.Name, "DROP TABLE "+x.Name)
	if len(x.Rows) > 0 {
		run("fill "+x.Name, "INSERT INTO "+x.Name+" VALUES "+strings.Join(x.Rows, ", "))
	}
	return query()
}

// render binds example arguments the way clickhouse-go does on the client.
func render(t *testing.T, sql string, args []any) string {
	t.Helper()
	var b strings.Builder
	for _, a := range args {
		i := strings.IndexByte(sql, '?')
		if i < 0 {
			t.Fatalf("more arguments than placeholders in %s", sql)
		}
		b.WriteString(sql[:i])
		b.WriteString(literal(t, a))
		sql = sql[i+1:]
	}
	if strings.Contains(sql, "?") {
		t.Fatalf("placeholder without argument in %s", sql)
	}
	b.WriteString(sql)
	return b.String()
}

func literal(t *testing.T, a any) string {
	switch v := a.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	case uint64:
		return strconv.FormatUint(v, 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case int:
		return strconv.Itoa(v)
	case clickhouse.GroupSet:
		parts := make([]string, len(v.Value))
		for i, x := range v.Value {
			parts[i] = literal(t, x)
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case []string:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = literal(t, x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	t.Fatalf("no literal for %T", a)
	return ""
}

func TestCurrentClickHouseCompat(t *testing.T) {
	conn, err := chdb.NewConnectionFromConnString(t.TempDir())
	if err != nil {
		t.Fatalf("chDB: %v", err)
	}
	defer conn.Close()
	run := func(name, sql string) string {
		t.Helper()
		res, err := conn.Query(sql, "TabSeparated")
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("%s: current ClickHouse refused\n%s\n%v", name, sql, err)
		}
		defer res.Free()
		return res.String()
	}
	version := run("version", "SELECT version()")
	t.Logf("current ClickHouse engine: %s", strings.TrimSpace(version))
	run("create database", "CREATE DATABASE IF NOT EXISTS trustpulse")
	run("use database", "USE trustpulse")

	for _, s := range schemas.MigrationStatements()[:1] {
		run(s.Name, s.SQL)
	}
	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ { // twice: migrations are idempotent
		for _, m := range ms {
			for i, s := range m.Statements {
				// Migrate skips an ADD COLUMN whose column exists (18.16 has no
				// IF NOT EXISTS there); the second round does too.
				if table, col, ok := schemas.AddedColumn(s); ok && round > 0 {
					if out := run("column exists", fmt.Sprintf("SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = '%s' AND name = '%s'", table, col)); strings.TrimSpace(out) != "1" {
						t.Fatalf("column %s.%s missing after the first round: %q", table, col, out)
					}
					continue
				}
				run(fmt.Sprintf("migration %04d_%s statement %d", m.Version, m.Name, i+1), s)
			}
		}
	}
	run("record migration", "INSERT INTO schema_migrations (version, name, applied_at) VALUES "+sampleRows["schema_migrations"])
	for _, s := range schemas.MigrationStatements()[1:] {
		if out := run(s.Name, render(t, s.SQL, s.Args)); strings.TrimSpace(out) != "1" {
			t.Errorf("%s returned %q, want 1", s.Name, out)
		}
	}

	inserts := projector.InsertStatements()
	tables := make([]string, 0, len(inserts))
	for table := range inserts {
		tables = append(tables, table)
	}
	sort.Strings(tables)
	for _, table := range tables {
		rows, ok := sampleRows[table]
		if !ok {
			t.Fatalf("no sample row for table %s", table)
		}
		run("insert into "+table, inserts[table]+" VALUES "+rows)
	}
	run("checkpoint", "INSERT INTO projector_checkpoint (consumer, seq, updated_at) VALUES "+sampleRows["projector_checkpoint"])
	run("served cell", "INSERT INTO served_cells (org, wave_id, cell_key, attr, value, n, served_at) VALUES "+sampleRows["served_cells"])
	run("served set", "INSERT INTO served_sets (org, wave_id, waves, cell_key, attr, value, n, derived, served_at) VALUES "+sampleRows["served_sets"])

	// Every query, with what the sample rows make it return.
	want := map[string]string{
		"waves":                           "w1\ts1\t2026-11-01 00:00:00\t2026-11-08 00:00:00",
		"closures":                        "w1\t90",
		"seals":                           "w1\t92",
		"served sets":                     "dim:trust\tw1,w2\tdepartment&team\tEngineering\x1ePlatform\x1fCore\t7\t0",
		"thresholds":                      "w1\t7",
		"comments":                        "More focus time",
		"token":                           "acme\tt1\tanalyst",
		"token revoked":                   "1",
		"token name":                      "laptop",
		"plan share":                      "1\t1",
		"retention":                       "Engineering\t1\t0",
		"survey drivers":                  "['q1','n1']\t['trust','enps']\t['support','']",
		"response types":                  "Engineering\tPlatform\tBerlin\t1-2y\t['7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01']\t7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01\t1",
		"respondents of a reporting line": "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01\t1",
		"respondents per manager":         "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01\t1",
		"checkpoint":                      "95",
		"survey":                          "['q1','n1']\t['Q','N']\t['trust','enps']\t['support','']",
		"invited by ''":                   "\t1",
		"questions":                       "n1\tenps\t1\t9\tnan\t[0,0,0,0,0,0,0,0,0,1,0]",
		"drivers":                         "support\ttrust\t1\t4\tnan\t[0,0,0,0,1,0,0,0,0,0,0]",
		"respondents by ''":               "\t1",
		"dimensions by ''":                "\ttrust\t1\t4\tnan\t[0,0,0,0,1,0,0,0,0,0,0]",
		"dimensions by team":              "Platform\ttrust\t1\t4\tnan\t[0,0,0,0,1,0,0,0,0,0,0]",
		"lookup projected":                "",
		"high-water mark of answers":      "4",
		// The projector's filter of event ids hashes them with
		// go-faster/city's CH64 and expects the server's cityHash64.
		"projected event id hashes": strconv.FormatUint(city.CH64([]byte("e1")), 10),
	}
	for _, s := range append(query.Statements(), projector.Statements()...) {
		if strings.HasPrefix(s.Name, "empty ") {
			continue // a replay's emptying of the tables: run last
		}
		out := withExternal(run, s.External, func() string { return run(s.Name, render(t, s.SQL, s.Args)) })
		if w, ok := want[s.Name]; ok && !strings.Contains(out, w) {
			t.Errorf("%s returned\n%q\nwant a line containing %q", s.Name, out, w)
		}
	}
	lookup := projector.Statements()[0]
	one := *lookup.External
	one.Rows = []string{"('e1')"}
	if out := withExternal(run, &one, func() string { return run("lookup e1", lookup.SQL) }); !strings.Contains(out, "e1\t4") {
		t.Errorf("lookup of a projected event returned %q", out)
	}
	for _, s := range projector.Statements() {
		if strings.HasPrefix(s.Name, "empty ") {
			run(s.Name, s.SQL)
		}
	}
	if out := run("after the replay's emptying", "SELECT count() FROM answers"); strings.TrimSpace(out) != "0" {
		t.Errorf("answers not empty after the replay's emptying: %q", out)
	}
}
