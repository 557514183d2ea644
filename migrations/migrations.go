// Package migrations holds backfill's schema as numbered, embedded SQL files
// and applies the ones a database lacks.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed *.up.sql
var files embed.FS

// versionTable records applied versions. It is named for this tool so it
// cannot collide with another migrator's schema_migrations.
const versionTable = "backfill_schema_migrations"

// lockKey serialises concurrent migrators; any constant works as long as it
// is the same for every copy of backfill.
const lockKey = 0x6261636b66696c6c // "backfill"

// ErrNotMigrated means the database lacks some of backfill's migrations.
var ErrNotMigrated = errors.New("database schema is missing or out of date: run `backfill migrate`")

// Migration is one embedded SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.up.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var all []Migration
	for _, name := range names {
		num, rest, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.up.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: bad version: %w", name, err)
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		all = append(all, Migration{Version: v, Name: strings.TrimSuffix(rest, ".up.sql"), SQL: string(body)})
	}
	slices.SortFunc(all, func(a, b Migration) int { return a.Version - b.Version })
	return all, nil
}

// Querier is what Apply and Check need: a *pgx.Conn, *pgxpool.Pool or
// *pgxpool.Conn.
type Querier interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Apply applies every migration the database lacks; see Migrate. It
// returns the migrations it applied.
func Apply(ctx context.Context, db Querier) ([]Migration, error) {
	r, err := Migrate(ctx, db, false)
	if err != nil {
		return nil, err
	}
	return r.Applied, nil
}

// Report says what Migrate changed, or with dryRun would change.
type Report struct {
	Applied []Migration
	Created []string   // tables created
	Adopted []Adoption // backend tables found and adopted by this run
	// Statements are the statements that change the database, in order.
	Statements []string
	Mapping    *Mapping
}

// Adoption is a table migrate found and did not create.
type Adoption struct {
	Table string
	New   bool  // adopted by this run of migrate
	Rows  int64 // estimated; they are left as they are
	Notes []string
}

// Migrate applies every migration the database lacks, all in one
// transaction under a transaction-level advisory lock, so two concurrent
// runs neither interleave nor half-apply.
//
// A backend table (BackendTables) that exists and that migrate did not
// create is adopted: the parts of migrations that create or index it are
// skipped, its shape is read, and writing adapts to it (see Map). If it
// cannot be filled safely, nothing is changed and the error is an
// *IncompatibleError. The only thing migrate may add to an adopted table is
// an index to find a Message-ID by, built CONCURRENTLY after the commit when
// the table is large. With dryRun every statement runs in the transaction,
// which is then rolled back: the report says exactly what would change.
func Migrate(ctx context.Context, db Querier, dryRun bool) (*Report, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	rep := &Report{}
	exec := func(sql string, args ...any) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		rep.Statements = append(rep.Statements, statement(sql, args))
		return nil
	}
	legacy := false // migrated before migrate recorded who created what
	for _, bk := range []struct{ name, ddl string }{
		{versionTable, `CREATE TABLE ` + versionTable + ` (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now())`},
		{ownersTable, `CREATE TABLE ` + ownersTable + ` (
	name        text PRIMARY KEY,
	origin      text NOT NULL CHECK (origin IN ('created', 'adopted')),
	recorded_at timestamptz NOT NULL DEFAULT now())`},
	} {
		exists, err := tableExists(ctx, tx, bk.name)
		if err != nil {
			return nil, err
		}
		if exists {
			continue
		}
		legacy = bk.name == ownersTable
		if err := exec(bk.ddl); err != nil {
			return nil, fmt.Errorf("create %s: %w", bk.name, err)
		}
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return nil, err
	}
	legacy = legacy && len(applied) > 0
	origins, err := readOrigins(ctx, tx)
	if err != nil {
		return nil, err
	}
	// Decide, before any migration runs, whose each table is.
	adopted := map[string]bool{}
	for _, name := range tablesOf(all) {
		if origins[name] != "" {
			continue
		}
		exists, err := tableExists(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		origin := originCreated
		if exists && !legacy && slices.Contains(BackendTables, name) {
			origin = originAdopted
		}
		if !exists {
			rep.Created = append(rep.Created, name)
		}
		adopted[name] = origin == originAdopted
		origins[name] = origin
		if err := exec(`INSERT INTO `+ownersTable+` (name, origin) VALUES ($1, $2)`, name, origin); err != nil {
			return nil, fmt.Errorf("record %s as %s: %w", name, origin, err)
		}
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		for _, sec := range sections(m.SQL) {
			if origins[sec.table] == originAdopted {
				continue
			}
			if err := exec(sec.sql); err != nil {
				return nil, fmt.Errorf("apply migration %03d_%s: %w", m.Version, m.Name, err)
			}
		}
		if err := exec(`INSERT INTO `+versionTable+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("record migration %03d_%s: %w", m.Version, m.Name, err)
		}
		rep.Applied = append(rep.Applied, m)
	}
	rep.Mapping, err = Inspect(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, tm := range []*TableMap{rep.Mapping.Messages, rep.Mapping.Threads, rep.Mapping.Status, rep.Mapping.Errors} {
		if !tm.Table.Owned {
			rep.Adopted = append(rep.Adopted, Adoption{Table: tm.Table.Name, New: adopted[tm.Table.Name], Rows: tm.Table.Rows, Notes: tm.Notes})
		}
	}
	inTx, concurrent := additions(rep.Mapping)
	for _, sql := range inTx {
		if err := exec(sql); err != nil {
			return nil, fmt.Errorf("index email_messages: %w", err)
		}
	}
	if dryRun {
		rep.Statements = append(rep.Statements, concurrent...)
		return rep, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit migrations: %w", err)
	}
	// CREATE INDEX CONCURRENTLY cannot run in a transaction; it lets the
	// backend go on writing while the index builds.
	for _, sql := range concurrent {
		if _, err := db.Exec(ctx, sql); err != nil {
			// A failed concurrent build leaves an invalid index of ours.
			_, _ = db.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+messageIndex)
			return nil, fmt.Errorf("index email_messages: %w", err)
		}
		rep.Statements = append(rep.Statements, sql)
	}
	return rep, nil
}

// statement is sql as the report shows it: its parameters written in, its
// end without a semicolon.
func statement(sql string, args []any) string {
	for i := len(args) - 1; i >= 0; i-- {
		v := fmt.Sprint(args[i])
		if _, ok := args[i].(string); ok {
			v = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		sql = strings.ReplaceAll(sql, fmt.Sprintf("$%d", i+1), v)
	}
	return strings.TrimSuffix(strings.TrimSpace(sql), ";")
}

func tableExists(ctx context.Context, db queryRower, name string) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	return ok, nil
}

// section is the part of a migration about one table: the lines from a
// "-- table: NAME" line to the next. Lines before the first belong to no
// table and always run.
type section struct {
	table, sql string
}

const sectionMark = "-- table: "

func sections(sql string) []section {
	var out []section
	cur := section{}
	var b strings.Builder
	for line := range strings.Lines(sql) {
		if name, ok := strings.CutPrefix(line, sectionMark); ok {
			if s := strings.TrimSpace(b.String()); s != "" {
				out = append(out, section{table: cur.table, sql: s})
			}
			cur, b = section{table: strings.TrimSpace(name)}, strings.Builder{}
			continue
		}
		b.WriteString(line)
	}
	if s := strings.TrimSpace(b.String()); s != "" {
		out = append(out, section{table: cur.table, sql: s})
	}
	// A section of comments alone changes nothing.
	return slices.DeleteFunc(out, func(s section) bool {
		for line := range strings.Lines(s.sql) {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
				return false
			}
		}
		return true
	})
}

// tablesOf lists the tables the migrations have sections for.
func tablesOf(all []Migration) []string {
	var names []string
	for _, m := range all {
		for _, s := range sections(m.SQL) {
			if s.table != "" && !slices.Contains(names, s.table) {
				names = append(names, s.table)
			}
		}
	}
	return names
}

// Check returns ErrNotMigrated (wrapped, with what is missing) unless every
// embedded migration has been applied.
func Check(ctx context.Context, db Querier) error {
	all, err := All()
	if err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return fmt.Errorf("%w (no %s table)", ErrNotMigrated, versionTable)
		}
		return err
	}
	for _, m := range all {
		if !applied[m.Version] {
			return fmt.Errorf("%w (migration %03d_%s not applied)", ErrNotMigrated, m.Version, m.Name)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, db queryRower) (map[int]bool, error) {
	rows, err := db.Query(ctx, `SELECT version FROM `+versionTable)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}
