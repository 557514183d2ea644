package pgsink

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/migrations"
)

// writer is the SQL a run writes and reads with. For the tool's own tables
// it is the hand-tuned SQL of sink.go and status.go; for tables the backend
// created (see migrations.Map) it is generated once per run from their
// shape.
type writer struct {
	// direct: email_messages and email_threads are the tool's own, so a
	// batch may be copied straight in (storeDirect).
	direct   bool
	insert   string // backfill_staging → email_messages, email_threads; $1 inbox
	notify   string // see notifySQL
	seen     string // see seenSQL
	existing string // see existingSQL; hashes: it takes MD5s, not ids
	hashes   bool
	ownRows  string // see ownRows; "" when the table has no UID columns
	begin    string // $1 inbox, $2 operation id; "" when nothing to record
	finish   string // see FinishRun
	holder   string // the running operation's id; $1 inbox; "" when unknown
	statuses string
	errors   string
	// errTargets are the adopted error_logs' columns; nil for the tool's own.
	errTargets []migrations.Target
	// flags and expunge record a followed mailbox's changes (see
	// follow.go); "" where the table has no column for them.
	flags, expunge string
	// limits are the character limits of email_messages' text columns, by
	// field.
	limits map[string]int

	// addFolder appends a folder to stored rows (see addFolder); "" for an
	// adopted email_messages, which is never updated.
	addFolder string
}

// ownWriter writes the tool's own tables.
func ownWriter() *writer {
	return &writer{direct: true, insert: insertSQL, notify: notifySQL, seen: seenSQL, existing: existingSQL, hashes: true, addFolder: addFolderSQL,
		ownRows: ownRowsSQL, begin: beginSQL, finish: finishSQL, holder: holderSQL, statuses: statusesSQL, errors: errorsSQL,
		flags: flagsSQL, expunge: expungeSQL}
}

// newWriter generates the SQL for the shape m describes.
func newWriter(m *migrations.Mapping) *writer {
	w := ownWriter()
	msgs, thr := m.Messages, m.Threads
	if msgs.Table.Owned && thr.Table.Owned && m.Status.Table.Owned && m.Errors.Table.Owned {
		return w
	}
	if !msgs.Table.Owned || !thr.Table.Owned {
		w.direct = false
		w.insert = genInsert(msgs, thr)
	}
	if !msgs.Table.Owned {
		w.seen = `SELECT u.uid FROM email_sync_uids u
	CROSS JOIN LATERAL (SELECT 1 FROM email_messages m WHERE ` + probe(msgs, "u.message_id", "$1") + ` LIMIT 1) AS m
	WHERE u.inbox = $1 AND u.folder = $3 AND u.uidvalidity = $2 AND u.uid >= $4`
		w.hashes = false
		w.addFolder = ""
		w.existing = `SELECT h.id FROM unnest($2::text[]) AS h(id), (SELECT $1::text AS inbox) AS p
	CROSS JOIN LATERAL (SELECT 1 FROM email_messages m WHERE ` + probe(msgs, "h.id", "p.inbox") + ` LIMIT 1) AS m`
		w.notify = genNotify(msgs)
		w.ownRows = ""
		w.flags, w.expunge = genFollow(msgs)
		uid, uv, id := msgs.Target("imap_uid"), msgs.Target("imap_uidvalidity"), msgs.Target("message_id")
		if uid != nil && uv != nil && id != nil {
			w.ownRows = `SELECT x.ord
	FROM unnest($2::int[], $3::text[], $4::bigint[], $5::bigint[]) AS x(ord, message_id, uid, uidvalidity),
		(SELECT $1::text AS inbox) AS p
	CROSS JOIN LATERAL (SELECT m.` + ident(uid.Col.Name) + ` AS imap_uid, m.` + ident(uv.Col.Name) + ` AS imap_uidvalidity,
		m.message_id FROM email_messages m WHERE ` + probe(msgs, "x.message_id", "p.inbox") + ` LIMIT 1) AS m
	WHERE m.message_id = x.message_id AND m.imap_uid = x.uid AND m.imap_uidvalidity = x.uidvalidity`
		}
		w.limits = map[string]int{}
		for _, t := range msgs.Targets {
			if t.Col.MaxLen > 0 && (t.Kind == migrations.Text || t.Conv == migrations.AsIs && t.Kind == migrations.TextArray) {
				w.limits[t.Field] = t.Col.MaxLen
			}
		}
	}
	if !m.Status.Table.Owned {
		w.begin, w.finish, w.holder = genStatusWrites(m.Status)
	}
	w.statuses = genStatuses(m)
	if !m.Errors.Table.Owned {
		w.errTargets = m.Errors.Targets
		w.errors = genErrors(m.Errors)
	}
	return w
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// probe is the condition that finds the row of Message-ID id in
// email_messages m, by the index the table has.
func probe(tm *migrations.TableMap, id, inbox string) string {
	var cond string
	if tm.Table.Owned || tm.Probe == "md5" {
		cond = "md5(m.message_id) = md5(" + id + ")"
	} else {
		cond = "m.message_id = " + id
	}
	if tm.Table.Owned || tm.ProbeInbox {
		cond = "m.inbox = " + inbox + " AND " + cond
	}
	return cond
}

// genNotify is notifySQL for an adopted email_messages: its ids, whatever
// their type, and their range only when they are integers; without an id
// column, the count of new rows.
func genNotify(msgs *migrations.TableMap) string {
	id := msgs.Table.Column("id")
	if id == nil || id.Array {
		return `SELECT pg_notify('` + NotifyChannel + `', jsonb_build_object('inbox', $1::text, 'count', cardinality($2::text[]))::text)`
	}
	summary := ""
	if slices.Contains([]string{"int2", "int4", "int8", "numeric"}, id.Base) {
		summary = ", 'min_id', min(new.id), 'max_id', max(new.id)"
	}
	return notifyStatement(probe(msgs, "x.message_id", "p.inbox"), summary)
}

// conv turns expr, a value of t's kind, into t's column type.
func conv(expr string, t migrations.Target) string {
	switch t.Conv {
	case migrations.ToJSON:
		if t.Col.Base == "json" {
			expr = "to_json(" + expr + ")"
		} else {
			expr = "to_jsonb(" + expr + ")"
		}
	case migrations.Join:
		expr = "array_to_string(" + expr + ", ', ')"
	case migrations.JSONText, migrations.UUIDText:
		expr = "(" + expr + ")::text"
	case migrations.JSONToJSON:
		expr = "(" + expr + ")::json"
	case migrations.ToTimestamp:
		expr = "(" + expr + " AT TIME ZONE 'UTC')"
	case migrations.ToDate:
		expr = "(" + expr + " AT TIME ZONE 'UTC')::date"
	case migrations.CountErrors:
		expr = "(SELECT coalesce(sum((g->>'count')::int), 0) FROM jsonb_array_elements(" + expr + ") AS g)"
	}
	// A value over a varchar's limit fails the whole batch: cut it. Message
	// fields were cut already, with a warning (Fit).
	if t.Col.MaxLen > 0 && (t.Kind == migrations.Text || t.Conv == migrations.Join || t.Conv == migrations.UUIDText) {
		expr = fmt.Sprintf("left(%s, %d)", expr, t.Col.MaxLen)
	}
	return expr
}

// fill is the constant a fill target gets.
func fill(t migrations.Target) string {
	switch t.Fill {
	case "false":
		return conv("false", t)
	case "empty":
		return conv("'{}'::text[]", t)
	default:
		return conv("now()", t)
	}
}

// nullFallback is what a NOT NULL column gets for a field the tool may
// leave NULL.
var nullFallback = map[string]string{"text_body": "''", "html_body": "''", "in_reply_to": "''", "sent_at": "s.received_at"}

// genInsert is insertSQL for adopted tables: the staged rows the table does
// not have yet go in, and only those are folded into the threads.
func genInsert(msgs, thr *migrations.TableMap) string {
	var b strings.Builder
	b.WriteString("WITH ins AS (\n\t")
	if msgs.Table.Owned {
		b.WriteString(ownMessagesInsert)
	} else {
		var cols, exprs []string
		for _, t := range msgs.Targets {
			src := "s." + ident(t.Field)
			switch {
			case t.Fill != "":
				cols, exprs = append(cols, ident(t.Col.Name)), append(exprs, fill(t))
				continue
			case t.Field == "inbox":
				src = "$1::text"
			}
			if fb, ok := nullFallback[t.Field]; ok && t.Col.NotNull {
				src = "coalesce(" + src + ", " + fb + ")"
			}
			cols, exprs = append(cols, ident(t.Col.Name)), append(exprs, conv(src, t))
		}
		fmt.Fprintf(&b, "INSERT INTO email_messages AS m (%s)\n\tSELECT %s\n\tFROM backfill_staging s\n",
			strings.Join(cols, ", "), strings.Join(exprs, ", "))
		if msgs.Key == nil {
			fmt.Fprintf(&b, "\tWHERE NOT EXISTS (SELECT 1 FROM email_messages m WHERE %s)\n", probe(msgs, "s.message_id", "$1::text"))
		}
		b.WriteString("\tORDER BY ord\n")
		if msgs.Key != nil {
			fmt.Fprintf(&b, "\tON CONFLICT (%s) DO NOTHING\n", strings.Join(msgs.Key, ", "))
		}
		b.WriteString("\tRETURNING m.message_id")
	}
	b.WriteString("\n), new AS (\n\tSELECT s.* FROM backfill_staging s JOIN ins ON ins.message_id = s.message_id\n), thr AS (\n\t")
	if thr.Table.Owned {
		b.WriteString(ownThreadsInsert)
	} else {
		b.WriteString(genThreads(thr))
	}
	b.WriteString("\n)\nSELECT ord FROM new")
	return b.String()
}

// genThreads folds the inserted rows into an adopted email_threads, as
// threadMergeSQL does into the tool's own.
func genThreads(thr *migrations.TableMap) string {
	var cols, exprs, sets []string
	col := func(field string) string {
		if t := thr.Target(field); t != nil {
			return ident(t.Col.Name)
		}
		return ""
	}
	for _, t := range thr.Targets {
		var src string
		switch {
		case t.Fill != "":
			src = fill(t)
		case t.Field == "inbox":
			src = conv("$1::text", t)
		default:
			src = conv("x."+t.Field, t)
		}
		cols, exprs = append(cols, ident(t.Col.Name)), append(exprs, src)
	}
	if c := col("message_count"); c != "" {
		sets = append(sets, fmt.Sprintf("%s = coalesce(t.%s, 0) + EXCLUDED.%s", c, c, c))
	}
	if s, f := col("subject"), col("first_message_at"); s != "" && f != "" {
		sets = append(sets, fmt.Sprintf("%s = CASE WHEN EXCLUDED.%s < t.%s THEN EXCLUDED.%s ELSE t.%s END", s, f, f, s, s))
	}
	if f := col("first_message_at"); f != "" {
		sets = append(sets, fmt.Sprintf("%s = LEAST(t.%s, EXCLUDED.%s)", f, f, f))
	}
	if l := col("last_message_at"); l != "" {
		sets = append(sets, fmt.Sprintf("%s = GREATEST(t.%s, EXCLUDED.%s)", l, l, l))
	}
	if c := thr.Table.Column("updated_at"); c != nil && !c.Generated {
		sets = append(sets, "updated_at = "+nowIn(*c))
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	return fmt.Sprintf(`INSERT INTO email_threads AS t (%s)
	SELECT %s
	FROM (SELECT thread_id, (array_agg(subject ORDER BY received_at))[1] AS subject, max(participants) AS participants,
		count(*) AS message_count, min(received_at) AS first_message_at, max(received_at) AS last_message_at
		FROM new GROUP BY thread_id ORDER BY thread_id) AS x
	ON CONFLICT (%s) %s`, strings.Join(cols, ", "), strings.Join(exprs, ", "), strings.Join(thr.Key, ", "), action)
}

// nowIn is now() in column c's time type, for an updated_at no target fills.
func nowIn(c migrations.Column) string {
	return conv("now()", migrations.Target{Kind: migrations.Time, Col: c, Conv: migrations.TimeConv(c)})
}

// statusParams names FinishRun's and BeginRun's parameters once, typed, so
// that a statement may use any of them.
const statusParams = `p AS (SELECT $1::text AS inbox, $2::jsonb AS errs, $3::bigint AS uv, $4::bigint AS last_uid,
	$5::uuid AS op, $6::text AS status)`

// genStatusWrites generates BeginRun's, FinishRun's and Lock's statements
// for an adopted email_sync_status.
func genStatusWrites(st *migrations.TableMap) (begin, finish, holder string) {
	count := "(SELECT count(*) FROM email_messages WHERE inbox = p.inbox)"
	type val struct{ begin, finish, update string }
	vals := map[string]val{
		"inbox":             {"p.inbox", "p.inbox", ""},
		"last_sync_at":      {"NULL::timestamptz", "now()", "now()"},
		"total_synced":      {count, count, count},
		"sync_errors":       {"'[]'::jsonb", "p.errs", "p.errs"},
		"uidvalidity":       {"NULL::bigint", "p.uv", "coalesce(p.uv, s.%s)"},
		"last_uid":          {"NULL::bigint", "p.last_uid", "coalesce(p.last_uid, s.%s)"},
		"last_operation_id": {"p.op", "p.op", "p.op"},
		"last_status":       {"'running'", "p.status", "p.status"},
	}
	var cols, bvals, fvals, bsets, fsets []string
	for _, t := range st.Targets {
		c := ident(t.Col.Name)
		cols = append(cols, c)
		if t.Fill != "" {
			bvals, fvals = append(bvals, fill(t)), append(fvals, fill(t))
			if t.Field == "updated_at" {
				bsets, fsets = append(bsets, c+" = "+fill(t)), append(fsets, c+" = "+fill(t))
			}
			continue
		}
		v := vals[t.Field]
		b := v.begin
		if strings.HasPrefix(b, "NULL") && t.Col.NotNull {
			b = v.finish
		}
		bvals, fvals = append(bvals, conv(b, t)), append(fvals, conv(v.finish, t))
		if v.update != "" {
			upd := v.update
			if strings.Contains(upd, "%s") {
				upd = fmt.Sprintf(upd, c)
			}
			fsets = append(fsets, c+" = "+conv(upd, t))
		}
		if t.Field == "last_operation_id" || t.Field == "last_status" {
			bsets = append(bsets, c+" = "+conv(v.begin, t))
		}
	}
	if c := st.Table.Column("updated_at"); c != nil && st.Target("updated_at") == nil && !c.Generated {
		set := "updated_at = " + nowIn(*c)
		bsets, fsets = append(bsets, set), append(fsets, set)
	}
	op, status := st.Target("last_operation_id"), st.Target("last_status")
	guard := ""
	if op != nil && status != nil {
		// As finishSQL: a run that lost its lock leaves the new holder's row.
		guard = fmt.Sprintf(" AND (s.%s IS DISTINCT FROM 'running' OR s.%s::text IS NOT DISTINCT FROM p.op::text)",
			ident(status.Col.Name), ident(op.Col.Name))
		holder = fmt.Sprintf("SELECT %s::text FROM email_sync_status WHERE inbox = $1 AND %s = 'running' LIMIT 1",
			ident(op.Col.Name), ident(status.Col.Name))
	}
	upsert := func(sets, values []string, guard string) string {
		return fmt.Sprintf(`WITH %s,
	u AS (UPDATE email_sync_status AS s SET %s FROM p WHERE s.inbox = p.inbox%s RETURNING 1)
	INSERT INTO email_sync_status (%s) SELECT %s FROM p
	WHERE NOT EXISTS (SELECT 1 FROM u) AND NOT EXISTS (SELECT 1 FROM email_sync_status s WHERE s.inbox = p.inbox)`,
			statusParams, strings.Join(sets, ", "), guard, strings.Join(cols, ", "), strings.Join(values, ", "))
	}
	if len(bsets) > 0 && (op != nil || status != nil) {
		begin = upsert(bsets, bvals, "")
	}
	finish = upsert(fsets, fvals, guard)
	return begin, finish, holder
}

// read turns an adopted column back into the kind the tool reads, or gives
// a typed NULL when the table has no column for field.
func read(tm *migrations.TableMap, alias, field, null string) string {
	t := tm.Target(field)
	if t == nil || t.Fill != "" {
		return null
	}
	c := alias + "." + ident(t.Col.Name)
	switch t.Conv {
	case migrations.ToTimestamp:
		return "(" + c + " AT TIME ZONE 'UTC')"
	case migrations.ToDate:
		return c + "::timestamptz"
	case migrations.JSONText, migrations.CountErrors:
		return "to_jsonb(" + c + ")"
	case migrations.JSONToJSON:
		return c + "::jsonb"
	case migrations.UUIDText:
		return c
	}
	switch t.Kind {
	case migrations.Int:
		return c + "::bigint"
	case migrations.UUID:
		return c + "::text"
	}
	return c
}

// genStatuses is statusesSQL for whatever shape the tables have.
func genStatuses(m *migrations.Mapping) string {
	st, thr, errs := m.Status, m.Threads, m.Errors
	if st.Table.Owned && thr.Table.Owned && errs.Table.Owned {
		return statusesSQL
	}
	threads := "(SELECT count(*) FROM email_threads t WHERE t.inbox = s.inbox)"
	if !thr.Table.Owned && thr.Target("inbox") == nil {
		threads = "(SELECT count(DISTINCT thread_id) FROM email_messages m WHERE m.inbox = s.inbox)"
	}
	lastErrs := "0::bigint"
	op, eop := read(st, "s", "last_operation_id", ""), read(errs, "e", "operation_id", "")
	if st.Table.Owned {
		op = "s.last_operation_id::text"
	}
	if errs.Table.Owned {
		eop = "e.operation_id::text"
	} else if c := read(errs, "e", "context", ""); eop == "" && c != "" {
		eop = "(" + c + "->>'operation_id')" // where errorRow puts it
	}
	if op != "" && eop != "" {
		sev := "true"
		if s := read(errs, "e", "severity", ""); s != "" {
			sev = "lower(coalesce(" + s + ", '')) <> 'warning'"
		}
		lastErrs = fmt.Sprintf("(SELECT count(*) FROM error_logs e WHERE %s = %s AND %s)", eop, op, sev)
	}
	if op == "" {
		op = "NULL::text"
	}
	col := func(field, null string) string {
		if st.Table.Owned {
			return "s." + field
		}
		return read(st, "s", field, null)
	}
	return fmt.Sprintf(`SELECT s.inbox::text, %s, coalesce(%s, 0), coalesce(%s, '[]'::jsonb), %s, %s, %s, %s::text,
		(SELECT count(*) FROM email_messages m WHERE m.inbox = s.inbox), %s, %s
	FROM email_sync_status s WHERE $1 = '' OR s.inbox = $1 ORDER BY s.inbox`,
		col("last_sync_at", "NULL::timestamptz"), col("total_synced", "NULL::bigint"), col("sync_errors", "NULL::jsonb"),
		col("uidvalidity", "NULL::bigint"), col("last_uid", "NULL::bigint"), op, col("last_status", "NULL::text"),
		threads, lastErrs)
}

// genErrors is errorsSQL for an adopted error_logs: fields without a column
// of their own are read from its JSON details, where InsertErrorLogs puts
// them.
func genErrors(tm *migrations.TableMap) string {
	ctx := read(tm, "e", "context", "")
	field := func(name, null string) string {
		if r := read(tm, "e", name, ""); r != "" {
			return r
		}
		if ctx != "" {
			return "(" + ctx + "->>'" + name + "')"
		}
		return null
	}
	at := read(tm, "e", "occurred_at", "NULL::timestamptz")
	if ctx == "" {
		ctx = "NULL::jsonb"
	}
	return fmt.Sprintf(`SELECT coalesce(%s, 'epoch'::timestamptz), coalesce(%s::text, ''), lower(coalesce(%s::text, '')),
		coalesce(%s::text, ''), %s::text, (%s)::bigint, %s::text, coalesce(%s::text, ''), coalesce(%s::text, ''),
		coalesce((%s)::int, 1), coalesce(%s, '{}'::jsonb)
	FROM error_logs e WHERE $1::text IS NULL OR %s::text = $1
	ORDER BY %s DESC NULLS LAST LIMIT $2`,
		at, field("operation_id", "NULL"), field("severity", "NULL"), field("category", "NULL"), field("inbox", "NULL"),
		field("imap_uid", "NULL"), field("message_id", "NULL"), field("error_type", "NULL"), field("error_message", "NULL"),
		field("attempts", "NULL"), ctx, field("operation_id", "NULL"), at)
}

// errorRow is one adopted error_logs row for COPY: each target's value, in
// the column's type. Fields without a column go into the JSON details.
func errorRow(targets []migrations.Target, e errlog.Entry) []any {
	extra := map[string]any{}
	for k, v := range e.Context {
		extra[k] = v
	}
	has := map[string]bool{}
	for _, t := range targets {
		has[t.Field] = true
	}
	for name, v := range map[string]any{"operation_id": e.OperationID.String(), "severity": string(e.Severity),
		"category": string(e.Category), "error_type": e.ErrorType, "inbox": e.Inbox, "imap_uid": e.UID,
		"message_id": e.MessageID, "attempts": e.Attempts} {
		if !has[name] && v != "" && v != uint32(0) {
			extra[name] = v
		}
	}
	row := make([]any, len(targets))
	for i, t := range targets {
		var v any
		switch t.Field {
		case "operation_id":
			v = e.OperationID.String()
			if t.Conv == migrations.AsIs {
				v = e.OperationID
			}
		case "occurred_at":
			v = e.OccurredAt.UTC()
		case "severity":
			s := string(e.Severity)
			if strings.Contains(t.Col.Name, "level") {
				s = strings.ToUpper(s) // as Python's logging names levels
			}
			v = s
		case "category":
			v = string(e.Category)
		case "error_type":
			v = e.ErrorType
		case "error_message":
			v = e.Message
		case "inbox":
			v = e.Inbox
		case "message_id":
			v = e.MessageID
		case "source":
			v = "backfill"
		case "imap_uid":
			if e.UID != 0 || t.Col.NotNull {
				v = int64(e.UID)
			}
		case "attempts":
			v = int64(e.Attempts)
		case "context":
			b, err := json.Marshal(extra)
			if err != nil {
				b = []byte("{}")
			}
			if t.Conv == migrations.JSONText {
				v = string(b)
			} else {
				v = b
			}
		}
		switch t.Fill {
		case "now":
			v = time.Now().UTC()
		case "false":
			v = false
		}
		if s, ok := v.(string); ok {
			switch {
			case s == "" && !t.Col.NotNull:
				v = nil
			case t.Col.MaxLen > 0:
				v, _ = cut(s, t.Col.MaxLen)
			}
		}
		row[i] = v
	}
	return row
}

// cut shortens s to at most n characters, on a character boundary, as
// PostgreSQL counts them for varchar(n).
func cut(s string, n int) (string, bool) {
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos], true
		}
		i++
	}
	return s, false
}

// storedID is Message-ID id as an adopted email_messages stores it: cut to
// the column's limit (see Fit).
func (w *writer) storedID(id string) string {
	if n := w.limits["message_id"]; n > 0 {
		id, _ = cut(id, n)
	}
	return id
}

// Fit cuts m's values to the limits of the adopted email_messages' columns
// and returns a warning for each value cut: a varchar(n) would otherwise
// refuse the whole batch. The cut values are what is stored and looked up.
func (s *Sink) Fit(m *message.Message) []string {
	w := s.writer()
	if len(w.limits) == 0 {
		return nil
	}
	var warnings []string
	for field, p := range map[string]*string{"message_id": &m.MessageID, "thread_id": &m.ThreadID,
		"from_address": &m.FromAddress, "from_name": &m.FromName, "subject": &m.Subject,
		"text_body": &m.TextBody, "html_body": &m.HTMLBody, "in_reply_to": &m.InReplyTo} {
		if n := w.limits[field]; n > 0 {
			var was bool
			if *p, was = cut(*p, n); was {
				warnings = append(warnings, fmt.Sprintf("%s cut to the column's %d characters", field, n))
			}
		}
	}
	for field, list := range map[string][]string{"to_addresses": m.To, "cc_addresses": m.Cc, "references": m.References, "labels": m.Labels} {
		if n := w.limits[field]; n > 0 {
			for i := range list {
				var was bool
				if list[i], was = cut(list[i], n); was {
					warnings = append(warnings, fmt.Sprintf("an element of %s cut to the column's %d characters", field, n))
				}
			}
		}
	}
	return warnings
}

// adapt reads the tables' shape and generates the SQL this sink writes them
// with; CheckSchema calls it. It fails with a *migrations.IncompatibleError
// when a table cannot be filled safely.
func (s *Sink) adapt(ctx context.Context) error {
	m, err := migrations.Inspect(ctx, s.pool)
	if err != nil {
		return err
	}
	w := newWriter(m)
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
	return nil
}

// writer returns the SQL to write with: the tool's own tables' until adapt
// has read the shape.
func (s *Sink) writer() *writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.w = ownWriter()
	}
	return s.w
}
