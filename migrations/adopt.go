package migrations

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// BackendTables are the tables the backend's own migration creates (the
// guide's `alembic upgrade head`). backfill creates each one that is
// missing and adopts each one it finds: it fills it as it is shaped and
// never alters, or writes anything but new rows to, the backend's tables.
var BackendTables = []string{"email_messages", "email_threads", "email_sync_status", "error_logs"}

// Kind is the kind of value the tool has for a field.
type Kind int

const (
	Text Kind = iota
	TextArray
	JSON
	Time
	Int
	Bool
	UUID
)

var kindNames = map[Kind]string{Text: "text", TextArray: "a list of strings", JSON: "JSON",
	Time: "a timestamp", Int: "an integer", Bool: "a boolean", UUID: "a UUID"}

// Conv is how a value of a Kind is written into a column of another type.
type Conv int

const (
	AsIs        Conv = iota
	ToJSON           // a list as a JSON array (jsonb or json)
	Join             // a list as text, comma separated
	JSONText         // JSON as its text
	JSONToJSON       // jsonb into json
	ToTimestamp      // timestamptz into timestamp, in UTC
	ToDate           // timestamptz into date, in UTC
	UUIDText         // a UUID as text
	CountErrors      // sync errors (JSON groups) as their total count
)

// Target is a column the tool writes, and how.
type Target struct {
	Field string // the field's name in the tool's own schema
	Kind  Kind
	Col   Column
	Conv  Conv
	// Fill is the constant written into a column the database does not
	// fill on its own ("false", "empty", "now", "backfill"); "" for data.
	Fill string
}

// TableMap is how the tool writes one table.
type TableMap struct {
	Table   *Table
	Targets []Target
	// Key is the conflict target (ON CONFLICT (...)); nil when the table
	// has no unique key the tool can use.
	Key []string
	// Probe is how a Message-ID is looked up in email_messages: "md5"
	// (md5(message_id), as the tool's own index has it) or "plain";
	// ProbeInbox says whether inbox is part of it.
	Probe      string
	ProbeInbox bool
	// Notes say, for the migrate report, how writing adapts.
	Notes []string
}

// Target returns the target of field, or nil when the table has no column
// for it.
func (m *TableMap) Target(field string) *Target {
	for i := range m.Targets {
		if m.Targets[i].Field == field {
			return &m.Targets[i]
		}
	}
	return nil
}

// Mapping is how the tool writes each backend table.
type Mapping struct {
	Messages, Threads, Status, Errors *TableMap
}

// field is a value the tool writes, and the columns that mean it.
type field struct {
	name    string
	kind    Kind
	aliases []string
	fill    string // a constant, written only where the database fills nothing
}

var messageFields = []field{
	{name: "inbox"}, {name: "message_id"}, {name: "thread_id"}, {name: "from_address"}, {name: "from_name"},
	{name: "to_addresses", kind: TextArray}, {name: "cc_addresses", kind: TextArray}, {name: "subject"},
	{name: "text_body"}, {name: "html_body"}, {name: "received_at", kind: Time}, {name: "sent_at", kind: Time},
	{name: "attachments", kind: JSON}, {name: "in_reply_to"}, {name: "references", kind: TextArray},
	{name: "size_bytes", kind: Int}, {name: "imap_uid", kind: Int}, {name: "imap_uidvalidity", kind: Int},
	// The server's flags, written even over a column default (see
	// message.SetFlags); --no-flags writes the guide's defaults.
	{name: "is_read", kind: Bool}, {name: "is_starred", kind: Bool},
	{name: "labels", kind: TextArray},
	// Gmail's ids: written only into an adopted table that has columns for
	// them (migration 004 adds them to the tool's own table alone).
	{name: "gmail_msgid", kind: Int}, {name: "gmail_thread_id", kind: Int},
	{name: "synced_at", kind: Time, fill: "now"},
	{name: "created_at", kind: Time, fill: "now"}, {name: "updated_at", kind: Time, fill: "now"},
}

var threadFields = []field{
	{name: "inbox"}, {name: "thread_id"}, {name: "subject"}, {name: "participants", kind: TextArray},
	{name: "message_count", kind: Int}, {name: "first_message_at", kind: Time}, {name: "last_message_at", kind: Time},
	{name: "created_at", kind: Time, fill: "now"}, {name: "updated_at", kind: Time, fill: "now"},
}

var statusFields = []field{
	{name: "inbox"}, {name: "last_sync_at", kind: Time, aliases: []string{"last_synced_at"}},
	{name: "total_synced", kind: Int}, {name: "sync_errors", kind: JSON},
	{name: "uidvalidity", kind: Int}, {name: "last_uid", kind: Int},
	{name: "last_operation_id", kind: UUID, aliases: []string{"operation_id"}},
	{name: "last_status", aliases: []string{"status"}},
	{name: "created_at", kind: Time, fill: "now"}, {name: "updated_at", kind: Time, fill: "now"},
}

var errorFields = []field{
	{name: "operation_id", kind: UUID, aliases: []string{"correlation_id", "request_id", "trace_id"}},
	{name: "occurred_at", kind: Time, aliases: []string{"created_at", "timestamp", "logged_at"}},
	{name: "severity", aliases: []string{"level", "log_level"}},
	{name: "category", aliases: []string{"error_category"}},
	{name: "error_type", aliases: []string{"type", "error_code"}},
	{name: "error_message", aliases: []string{"message", "msg", "description"}},
	{name: "context", kind: JSON, aliases: []string{"details", "metadata", "extra", "data", "payload"}},
	{name: "inbox"}, {name: "imap_uid", kind: Int, aliases: []string{"uid"}}, {name: "message_id"},
	{name: "attempts", kind: Int, aliases: []string{"retry_count", "retries"}},
	{name: "source", aliases: []string{"service", "component"}},
	{name: "created_at", kind: Time, fill: "now"}, {name: "updated_at", kind: Time, fill: "now"},
	{name: "resolved", kind: Bool, fill: "false", aliases: []string{"is_resolved"}},
}

// Map works out how the tool writes each of the backend tables in s, or
// returns an *IncompatibleError naming every column it cannot fill.
func Map(s map[string]*Table) (*Mapping, error) {
	var problems []Problem
	m := &Mapping{}
	for _, t := range []struct {
		name   string
		fields []field
		dst    **TableMap
	}{
		{"email_messages", messageFields, &m.Messages},
		{"email_threads", threadFields, &m.Threads},
		{"email_sync_status", statusFields, &m.Status},
		{"error_logs", errorFields, &m.Errors},
	} {
		tbl := s[t.name]
		if tbl == nil || !tbl.Exists {
			return nil, fmt.Errorf("%w (table %s does not exist)", ErrNotMigrated, t.name)
		}
		tm, ps := mapTable(tbl, t.fields)
		problems = append(problems, ps...)
		*t.dst = tm
	}
	if len(problems) == 0 && !m.Messages.Table.Owned {
		problems = append(problems, keyMessages(m.Messages)...)
	}
	if len(problems) == 0 && !m.Threads.Table.Owned {
		problems = append(problems, keyThreads(m.Threads)...)
	}
	for _, req := range []struct {
		tm     *TableMap
		fields []string
	}{
		{m.Messages, []string{"inbox", "message_id"}},
		{m.Threads, []string{"thread_id"}},
		{m.Status, []string{"inbox"}},
		{m.Errors, []string{"error_message"}},
	} {
		if req.tm.Table.Owned {
			continue
		}
		for _, f := range req.fields {
			if req.tm.Target(f) == nil && !slices.ContainsFunc(problems, func(p Problem) bool { return p.Table == req.tm.Table.Name && p.Column == f }) {
				problems = append(problems, Problem{Table: req.tm.Table.Name, Column: f,
					What: "backfill needs this column and the table has none (nor one of the same meaning)",
					Fix:  fmt.Sprintf("Add it (ALTER TABLE %s ADD COLUMN %s ...), then run backfill migrate again.", req.tm.Table.Name, f)})
			}
		}
	}
	if len(problems) > 0 {
		return nil, &IncompatibleError{Problems: problems}
	}
	return m, nil
}

// mapTable assigns the fields to the columns of an adopted table; an owned
// table is written as the tool's migrations made it.
func mapTable(t *Table, fields []field) (*TableMap, []Problem) {
	tm := &TableMap{Table: t}
	if t.Owned {
		return tm, nil
	}
	used := map[string]bool{}
	var problems []Problem
	var renamed, converted, cut, defaults []string
	for _, f := range fields {
		var col *Column
		for _, name := range append([]string{f.name}, f.aliases...) {
			if c := t.Column(name); c != nil && !used[name] && !c.Generated {
				col = c
				break
			}
		}
		if col == nil || (f.fill != "" && col.Filled) {
			continue
		}
		used[col.Name] = true
		conv, ok := convFor(f, *col)
		if !ok {
			problems = append(problems, Problem{Table: t.Name, Column: col.Name,
				What: fmt.Sprintf("its type is %s, and backfill writes %s here (%s)", col.Type, kindNames[f.kind], f.name),
				Fix:  fmt.Sprintf("Change its type (for instance to %s), or rename it if it means something else, then run backfill migrate again.", suggested[f.kind])})
			continue
		}
		tm.Targets = append(tm.Targets, Target{Field: f.name, Kind: f.kind, Col: *col, Conv: conv, Fill: f.fill})
		if col.Name != f.name {
			renamed = append(renamed, fmt.Sprintf("%s into %s", f.name, col.Name))
		}
		if conv != AsIs {
			converted = append(converted, fmt.Sprintf("%s as %s", col.Name, col.Type))
		}
		if col.MaxLen > 0 {
			cut = append(cut, fmt.Sprintf("%s to %d", col.Name, col.MaxLen))
		}
	}
	var unwritten []string
	for _, c := range t.Columns {
		switch {
		case used[c.Name]:
		case c.Filled:
			defaults = append(defaults, c.Name)
		case c.NotNull:
			problems = append(problems, Problem{Table: t.Name, Column: c.Name,
				What: "it is NOT NULL without a default, and backfill has no value for it",
				Fix: fmt.Sprintf("Give it a default (ALTER TABLE %s ALTER COLUMN %s SET DEFAULT ...) or allow NULL, then run backfill migrate again.",
					t.Name, c.Name)})
		default:
			unwritten = append(unwritten, c.Name)
		}
	}
	if len(renamed) > 0 {
		tm.Notes = append(tm.Notes, "written by meaning: "+strings.Join(renamed, ", "))
	}
	if len(converted) > 0 {
		tm.Notes = append(tm.Notes, "converted: "+strings.Join(converted, ", "))
	}
	if len(cut) > 0 {
		tm.Notes = append(tm.Notes, "longer values cut (on a character boundary, with a warning): "+strings.Join(cut, ", ")+" characters")
	}
	if len(defaults) > 0 {
		tm.Notes = append(tm.Notes, "left to the database's defaults: "+strings.Join(defaults, ", "))
	}
	if len(unwritten) > 0 {
		tm.Notes = append(tm.Notes, "left NULL: "+strings.Join(unwritten, ", "))
	}
	return tm, problems
}

var suggested = map[Kind]string{Text: "text", TextArray: "text[] or jsonb", JSON: "jsonb", Time: "timestamptz",
	Int: "bigint", Bool: "boolean", UUID: "uuid or text"}

// TimeConv is how a time value is written into column c (AsIs when c is
// no time column).
func TimeConv(c Column) Conv {
	conv, _ := convFor(field{kind: Time}, c)
	return conv
}

func convFor(f field, c Column) (Conv, bool) {
	textLike := !c.Array && slices.Contains([]string{"text", "varchar", "bpchar", "citext"}, c.Base)
	json := !c.Array && (c.Base == "jsonb" || c.Base == "json")
	integer := !c.Array && slices.Contains([]string{"int2", "int4", "int8", "numeric"}, c.Base)
	switch f.kind {
	case Text:
		return AsIs, textLike
	case TextArray:
		switch {
		case c.Array && slices.Contains([]string{"text", "varchar", "citext"}, c.Base):
			return AsIs, true
		case json:
			return ToJSON, true
		case textLike:
			return Join, true
		}
	case JSON:
		switch {
		case !c.Array && c.Base == "jsonb":
			return AsIs, true
		case !c.Array && c.Base == "json":
			return JSONToJSON, true
		case textLike:
			return JSONText, true
		case integer && f.name == "sync_errors":
			return CountErrors, true
		}
	case Time:
		switch {
		case c.Array:
		case c.Base == "timestamptz":
			return AsIs, true
		case c.Base == "timestamp":
			return ToTimestamp, true
		case c.Base == "date":
			return ToDate, true
		}
	case Int:
		return AsIs, integer
	case Bool:
		return AsIs, !c.Array && c.Base == "bool"
	case UUID:
		if !c.Array && c.Base == "uuid" {
			return AsIs, true
		}
		return UUIDText, textLike
	}
	return AsIs, false
}

// keyMessages picks the conflict target on message_id: whichever unique key
// the table has, with or without inbox, so that dedup means "already in the
// database" as the backend defines it.
func keyMessages(tm *TableMap) []Problem {
	t := tm.Table
	for _, k := range []struct {
		keys  []string
		probe string
	}{
		{[]string{"inbox", "md5(message_id)"}, "md5"}, {[]string{"inbox", "message_id"}, "plain"},
		{[]string{"md5(message_id)"}, "md5"}, {[]string{"message_id"}, "plain"},
	} {
		if t.hasUnique(k.keys...) {
			tm.Key, tm.Probe, tm.ProbeInbox = k.keys, k.probe, len(k.keys) == 2
			tm.Notes = append([]string{"duplicates by the unique key (" + strings.Join(k.keys, ", ") + ")"}, tm.Notes...)
			return nil
		}
	}
	// No unique key: each insert checks first, per inbox as the tool's own
	// key does, through an index on message_id or one migrate adds.
	tm.Probe, tm.ProbeInbox = "md5", true
	if t.hasIndexLeading("inbox", "message_id") || t.hasIndexLeading("message_id") {
		tm.Probe = "plain"
	}
	tm.Notes = append([]string{"no unique key on message_id: each insert first checks the Message-ID is not stored"}, tm.Notes...)
	return nil
}

// messageIndex is the index migrate adds to an adopted email_messages that
// has none to find a Message-ID by.
const messageIndex = "backfill_email_messages_message_id_idx"

func keyThreads(tm *TableMap) []Problem {
	t := tm.Table
	for _, keys := range [][]string{{"inbox", "thread_id"}, {"thread_id"}} {
		if t.hasUnique(keys...) {
			tm.Key = keys
			return nil
		}
	}
	return []Problem{{Table: t.Name, Column: "thread_id",
		What: "no unique key on thread_id (or inbox, thread_id), so backfill cannot update a thread's counts without duplicating it",
		Fix:  "Add one (ALTER TABLE email_threads ADD UNIQUE (inbox, thread_id)), then run backfill migrate again."}}
}

// additions are the statements migrate adds to adopted tables: only an index
// to find a Message-ID by, when the table has none.
func additions(m *Mapping) (inTx, concurrent []string) {
	tm := m.Messages
	if tm.Table.Owned || tm.Key != nil || tm.Probe != "md5" {
		return nil, nil
	}
	if tm.Table.Rows > largeTable {
		return nil, []string{`CREATE INDEX CONCURRENTLY IF NOT EXISTS ` + messageIndex + ` ON email_messages (inbox, md5(message_id))`}
	}
	return []string{`CREATE INDEX IF NOT EXISTS ` + messageIndex + ` ON email_messages (inbox, md5(message_id))`}, nil
}

// Inspect reads the shape of the backend tables and works out how to write
// them. It fails with ErrNotMigrated when migrate has not run, and with an
// *IncompatibleError when a table cannot be filled safely.
func Inspect(ctx context.Context, db queryRower) (*Mapping, error) {
	origins, err := readOrigins(ctx, db)
	if err != nil {
		return nil, err
	}
	tables := map[string]*Table{}
	for _, name := range BackendTables {
		t, err := inspect(ctx, db, name)
		if err != nil {
			return nil, err
		}
		t.Owned = origins[name] == originCreated
		tables[name] = t
	}
	return Map(tables)
}

const (
	originCreated = "created"
	originAdopted = "adopted"
)

// ownersTable records, per table, whether migrate created it or found it.
const ownersTable = "backfill_tables"

func readOrigins(ctx context.Context, db queryRower) (map[string]string, error) {
	exists, err := tableExists(ctx, db, ownersTable)
	if err != nil {
		return nil, err
	}
	origins := map[string]string{}
	if !exists {
		return origins, nil
	}
	rows, err := db.Query(ctx, `SELECT name, origin FROM `+ownersTable)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ownersTable, err)
	}
	var name, origin string
	_, err = pgx.ForEachRow(rows, []any{&name, &origin}, func() error {
		origins[name] = origin
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ownersTable, err)
	}
	return origins, nil
}
