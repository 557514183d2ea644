package serve

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/migrations"
)

// queries are the SQL the endpoints read with, generated once from the
// tables' shape: the tool's own tables as its migrations made them, or the
// backend's that migrate adopted, read through the same mapping a run
// writes them with.
type queries struct {
	emails string // $1 inbox, $2 limit: one JSON object per row, newest first
	known  string // $1 inbox: whether the inbox has a sync status row
	// Each stats query returns rows that begin with the inbox.
	messages string // inbox, messages, unread (NULL without an is_read column)
	threads  string // inbox, threads
	status   string // inbox, last_sync_at, total_synced, last operation id, last status
	errors   string // inbox, severity, error type, rows: the last runs' error_logs; "" when they cannot be told
}

// emailFields are the emails endpoint's keys, each read from the field of
// the same name; a key whose column the table lacks is null.
var emailFields = []string{"id", "message_id", "thread_id", "from_address", "from_name", "to_addresses",
	"cc_addresses", "subject", "received_at", "sent_at", "is_read", "is_starred", "labels", "size_bytes", "synced_at"}

// optionalFields are shown only when the table has them.
var optionalFields = []string{"folders", "deleted_at"}

// idFields are Gmail's 64-bit ids, shown where the table has them as
// decimal strings: a JSON number that large loses digits in JavaScript.
var idFields = []string{"gmail_msgid", "gmail_thread_id"}

func newQueries(m *migrations.Mapping) *queries {
	msgs, thr, st, errs := m.Messages, m.Threads, m.Status, m.Errors
	q := &queries{}

	var obj []string
	for _, f := range emailFields {
		obj = append(obj, "'"+f+"'", orNull(column(msgs, "m", f)))
	}
	attachments := "NULL::int"
	if a := column(msgs, "m", "attachments"); a != "" {
		a = "(" + a + ")::jsonb"
		attachments = "coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(" + a + ") = 'array' THEN " + a + " END), 0)"
	}
	obj = append(obj, "'attachment_count'", attachments)
	for _, f := range optionalFields {
		if c := column(msgs, "m", f); c != "" {
			obj = append(obj, "'"+f+"'", c)
		}
	}
	for _, f := range idFields {
		if c := column(msgs, "m", f); c != "" {
			obj = append(obj, "'"+f+"'", "("+c+")::text")
		}
	}
	order := []string{}
	for _, f := range []string{"received_at", "id"} {
		if c := column(msgs, "m", f); c != "" {
			order = append(order, c+" DESC")
		}
	}
	if len(order) == 0 {
		order = []string{"1"}
	}
	inbox := column(msgs, "m", "inbox")
	q.emails = fmt.Sprintf(`SELECT json_build_object(%s) FROM email_messages m WHERE %s = $1 ORDER BY %s LIMIT $2`,
		strings.Join(obj, ", "), inbox, strings.Join(order, ", "))

	unread := "NULL::bigint"
	if r := column(msgs, "m", "is_read"); r != "" {
		unread = "count(*) FILTER (WHERE NOT coalesce(" + r + ", false))"
	}
	q.messages = fmt.Sprintf(`SELECT %s::text, count(*), %s FROM email_messages m GROUP BY 1`, inbox, unread)
	if ti := column(thr, "t", "inbox"); ti != "" {
		q.threads = fmt.Sprintf(`SELECT %s::text, count(*) FROM email_threads t GROUP BY 1`, ti)
	} else {
		q.threads = fmt.Sprintf(`SELECT %s::text, count(DISTINCT %s) FROM email_messages m GROUP BY 1`,
			inbox, column(msgs, "m", "thread_id"))
	}

	si := column(st, "s", "inbox")
	q.known = fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM email_sync_status s WHERE %s = $1)`, si)
	op := column(st, "s", "last_operation_id")
	q.status = fmt.Sprintf(`SELECT %s::text, (%s)::timestamptz, (%s)::bigint, (%s)::text, coalesce((%s)::text, '') FROM email_sync_status s`,
		si, orNull(column(st, "s", "last_sync_at")), orNull(column(st, "s", "total_synced")), orNull(op),
		orNull(column(st, "s", "last_status")))

	if st.Table.Owned && errs.Table.Owned {
		// Typed, so that the error_logs (operation_id) index is used.
		q.errors = `SELECT s.inbox, e.severity, e.error_type, count(*)
			FROM email_sync_status s JOIN error_logs e ON e.operation_id = s.last_operation_id GROUP BY 1, 2, 3`
		return q
	}
	// An adopted error_logs may keep what has no column of its own in its
	// JSON details, where a run puts it.
	details := column(errs, "e", "context")
	field := func(name string) string {
		if c := column(errs, "e", name); c != "" {
			return "(" + c + ")::text"
		}
		if details != "" {
			return "((" + details + ")::jsonb->>'" + name + "')"
		}
		return ""
	}
	eop, severity, typ := field("operation_id"), field("severity"), field("error_type")
	if op != "" && eop != "" {
		q.errors = fmt.Sprintf(`SELECT %s::text, lower(coalesce(%s, '')), coalesce(%s, ''), count(*)
			FROM email_sync_status s JOIN error_logs e ON %s = (%s)::text GROUP BY 1, 2, 3`,
			si, orNull(severity), orNull(typ), eop, op)
	}
	return q
}

// column is the expression that reads field from table tm (alias alias):
// the tool's own column, or the adopted column that holds the field turned
// back into what the tool writes; "" when the table has none.
func column(tm *migrations.TableMap, alias, field string) string {
	if t := tm.Target(field); t != nil && !tm.Table.Owned {
		c := alias + "." + ident(t.Col.Name)
		switch t.Conv {
		case migrations.Join:
			return "string_to_array(" + c + ", ', ')"
		case migrations.ToTimestamp:
			return "(" + c + " AT TIME ZONE 'UTC')"
		case migrations.ToDate:
			return c + "::timestamptz"
		}
		return c
	}
	// The tool's own tables, and columns no run writes (id, deleted_at).
	if tm.Table.Column(field) != nil {
		return alias + "." + ident(field)
	}
	return ""
}

func orNull(expr string) string {
	if expr == "" {
		return "NULL"
	}
	return expr
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
