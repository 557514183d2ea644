package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Column is one column of a table as the catalog describes it.
type Column struct {
	Name string
	Type string // as PostgreSQL spells it: "character varying(255)", "text[]", "jsonb"
	// Base is the type's name, of the element for an array: varchar, text,
	// jsonb, uuid, int8, timestamptz, ...
	Base    string
	Array   bool
	MaxLen  int // of varchar(n) and char(n), in characters; 0: no limit
	NotNull bool
	// Filled means the database fills it when an INSERT leaves it out: a
	// default, an identity or a generated column.
	Filled    bool
	Generated bool // GENERATED ALWAYS AS: can never be written
}

// Table is a table's shape: its columns and keys.
type Table struct {
	Name    string
	Exists  bool
	Owned   bool // created by backfill migrate; otherwise adopted
	Columns []Column
	// Unique holds the keys of each unique index or constraint without a
	// predicate, as pg_get_indexdef spells them: "inbox", "md5(message_id)".
	Unique [][]string
	// Indexes holds the keys of every index, unique or not.
	Indexes [][]string
	Rows    int64 // estimated
}

// Column returns the column named name, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// hasUnique reports whether a unique key has exactly these keys, in any
// order (ON CONFLICT infers an index from the set).
func (t *Table) hasUnique(keys ...string) bool {
	return slices.ContainsFunc(t.Unique, func(u []string) bool { return sameSet(u, keys) })
}

// hasIndexLeading reports whether an index's first keys are these, in any
// order.
func (t *Table) hasIndexLeading(keys ...string) bool {
	return slices.ContainsFunc(t.Indexes, func(ix []string) bool {
		return len(ix) >= len(keys) && sameSet(ix[:len(keys)], keys)
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !slices.Contains(b, k) {
			return false
		}
	}
	return true
}

type queryRower interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inspect reads a table's shape from the catalog. The name is resolved on
// the search path, as the tool's unqualified statements resolve it.
func inspect(ctx context.Context, db queryRower, name string) (*Table, error) {
	t := &Table{Name: name}
	var oid *uint32
	if err := db.QueryRow(ctx, `SELECT to_regclass($1)::oid`, name).Scan(&oid); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", name, err)
	}
	if oid == nil {
		return t, nil
	}
	t.Exists = true
	rows, err := db.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod),
			CASE WHEN t.typcategory = 'A' THEN et.typname ELSE t.typname END,
			t.typcategory = 'A',
			CASE WHEN a.atttypmod > 4 AND (CASE WHEN t.typcategory = 'A' THEN et.typname ELSE t.typname END) IN ('varchar', 'bpchar')
				THEN a.atttypmod - 4 ELSE 0 END,
			a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', a.attgenerated <> ''
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_type et ON et.oid = t.typelem
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	t.Columns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		var maxLen int32
		err := r.Scan(&c.Name, &c.Type, &c.Base, &c.Array, &maxLen, &c.NotNull, &c.Filled, &c.Generated)
		c.MaxLen = int(maxLen)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	rows, err = db.Query(ctx, `
		SELECT i.indisunique AND i.indpred IS NULL,
			array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k)
		FROM pg_index i WHERE i.indrelid = $1 AND i.indisvalid`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", name, err)
	}
	var unique bool
	var keys []string
	_, err = pgx.ForEachRow(rows, []any{&unique, &keys}, func() error {
		for i, k := range keys {
			keys[i] = strings.ReplaceAll(k, `"`, "")
		}
		t.Indexes = append(t.Indexes, keys)
		if unique {
			t.Unique = append(t.Unique, keys)
		}
		keys = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read indexes of %s: %w", name, err)
	}
	// reltuples is -1 until the table is first analysed; then count, but
	// no further than what makes a table large.
	if err := db.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE oid = $1`, *oid).Scan(&t.Rows); err != nil {
		return nil, fmt.Errorf("estimate rows of %s: %w", name, err)
	}
	if t.Rows < 0 {
		err := db.QueryRow(ctx, `SELECT count(*) FROM (SELECT FROM `+pgx.Identifier{name}.Sanitize()+` LIMIT $1) AS x`, largeTable+1).Scan(&t.Rows)
		if err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", name, err)
		}
	}
	return t, nil
}

// largeTable is the row count from which an index is built CONCURRENTLY:
// a plain CREATE INDEX blocks the backend's writes while it builds.
const largeTable = 10000

// ErrIncompatible means a table the tool did not create cannot be filled
// safely; IncompatibleError says which and what to do.
var ErrIncompatible = errors.New("existing tables cannot be filled safely")

// Problem is one reason a table cannot be filled.
type Problem struct {
	Table, Column string
	What, Fix     string
}

func (p Problem) String() string {
	at := p.Table
	if p.Column != "" {
		at += "." + p.Column
	}
	return fmt.Sprintf("%s: %s. %s", at, p.What, p.Fix)
}

// IncompatibleError lists every problem found; it wraps ErrIncompatible.
type IncompatibleError struct{ Problems []Problem }

func (e *IncompatibleError) Error() string {
	var b strings.Builder
	b.WriteString(ErrIncompatible.Error() + ":")
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.String())
	}
	b.WriteString("\n  (or give backfill tables of its own: point DATABASE_URL at an empty schema, e.g. ?search_path=backfill, and run backfill migrate)")
	return b.String()
}

func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }
