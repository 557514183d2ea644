package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/pgsink"
)

// Issue 13: the backend's own migration (`alembic upgrade head`) made the
// tables before any backfill. These schemas are written from the guide's
// description, each shaped differently; backfill adopts them, fills them
// and leaves the backend's rows alone.

// backendSchema is one backend-made schema, with a row of the backend's in
// each table and a query per table that reads those rows back.
type backendSchema struct {
	name string
	ddl  string
	// rows are the backend's own rows: one query per table, reading them
	// as text, to compare before and after.
	rows []string
	// stored reads a stored message as text comparable with ownStored:
	// message_id|thread_id|subject|from|to addresses|received_at (UTC).
	stored string
	// ours counts the rows this run wrote into error_logs.
	errorRows string
}

// ownStored is stored for the tool's own schema.
const ownStored = `SELECT message_id || '|' || thread_id || '|' || subject || '|' || from_address || '|' ||
	array_to_string(to_addresses, ',') || '|' || to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
	FROM email_messages WHERE inbox = 'demo'`

var backendSchemas = []backendSchema{{
	// uuid ids, jsonb addresses and labels, Message-ID unique on its own,
	// an error_logs with level/message/details.
	name: "uuid_jsonb_unique_message_id",
	ddl: `
CREATE TABLE email_messages (
	id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	inbox        varchar(50)  NOT NULL,
	message_id   varchar(255) NOT NULL UNIQUE,
	thread_id    varchar(100) NOT NULL,
	from_address varchar(255) NOT NULL,
	from_name    varchar(255),
	to_addresses jsonb NOT NULL DEFAULT '[]',
	cc_addresses jsonb NOT NULL DEFAULT '[]',
	subject      varchar(500),
	text_body    text,
	html_body    text,
	received_at  timestamptz NOT NULL,
	attachments  jsonb DEFAULT '[]',
	labels       jsonb NOT NULL DEFAULT '[]',
	is_read      boolean NOT NULL DEFAULT false,
	is_starred   boolean NOT NULL DEFAULT false,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now());
CREATE TABLE email_threads (
	id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	inbox            varchar(50) NOT NULL,
	thread_id        varchar(100) NOT NULL UNIQUE,
	subject          varchar(500),
	participants     jsonb NOT NULL DEFAULT '[]',
	message_count    integer NOT NULL DEFAULT 0,
	first_message_at timestamptz,
	last_message_at  timestamptz,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now());
CREATE TABLE email_sync_status (
	id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	inbox        varchar(50) NOT NULL UNIQUE,
	last_sync_at timestamptz,
	total_synced integer NOT NULL DEFAULT 0,
	sync_errors  jsonb NOT NULL DEFAULT '[]',
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now());
CREATE TABLE error_logs (
	id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	level      varchar(20) NOT NULL,
	category   varchar(50),
	message    text NOT NULL,
	details    jsonb,
	source     varchar(100) NOT NULL DEFAULT 'backend',
	created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO email_messages (inbox, message_id, thread_id, from_address, to_addresses, subject, received_at, created_at, updated_at)
	VALUES ('customer_support', 'backend-1@example.com', 'thread_000000000001', 'a@example.com', '["cs@example.com"]',
	'Booked by the backend', '2025-11-01 10:00Z', '2025-11-01 10:00Z', '2025-11-01 10:00Z');
INSERT INTO email_threads (inbox, thread_id, subject, message_count, created_at, updated_at)
	VALUES ('customer_support', 'thread_000000000001', 'Booked by the backend', 1, '2025-11-01 10:00Z', '2025-11-01 10:00Z');
INSERT INTO email_sync_status (inbox, last_sync_at, total_synced, created_at, updated_at)
	VALUES ('customer_support', '2025-11-01 10:00Z', 1, '2025-11-01 10:00Z', '2025-11-01 10:00Z');
INSERT INTO error_logs (level, category, message, details, created_at)
	VALUES ('ERROR', 'imap', 'IDLE monitor lost its connection', '{"inbox": "customer_support"}', '2025-11-01 10:00Z');`,
	rows: []string{
		`SELECT row_to_json(t)::text FROM email_messages t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM email_threads t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM email_sync_status t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM error_logs t WHERE source = 'backend'`,
	},
	stored: `SELECT message_id || '|' || thread_id || '|' || subject || '|' || from_address || '|' ||
		(SELECT coalesce(string_agg(x, ','), '') FROM jsonb_array_elements_text(to_addresses) AS x) || '|' ||
		to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
		FROM email_messages WHERE inbox = 'demo' AND id IS NOT NULL AND created_at IS NOT NULL AND jsonb_typeof(labels) = 'array'`,
	errorRows: `SELECT count(*) FROM error_logs WHERE source = 'backfill' AND level IN ('ERROR', 'WARNING') AND details->>'inbox' = 'demo'`,
}, {
	// bigserial ids, text[] addresses, unique (inbox, message_id), a short
	// varchar subject, timestamp without time zone, an error_logs with
	// severity/error_message/context and a status without a status column.
	name: "bigserial_textarray_unique_inbox_message_id",
	ddl: `
CREATE TABLE email_messages (
	id           bigserial PRIMARY KEY,
	inbox        text NOT NULL,
	message_id   text NOT NULL,
	thread_id    text,
	from_address text,
	from_name    text,
	to_addresses text[] NOT NULL DEFAULT '{}',
	cc_addresses text[],
	subject      varchar(40),
	text_body    text NOT NULL,
	html_body    text,
	received_at  timestamp NOT NULL,
	sent_at      timestamptz,
	attachments  json,
	labels       text[],
	synced_at    timestamptz,
	UNIQUE (inbox, message_id));
CREATE TABLE email_threads (
	id               bigserial PRIMARY KEY,
	inbox            text NOT NULL,
	thread_id        text NOT NULL,
	subject          text,
	participants     text[],
	message_count    integer NOT NULL DEFAULT 0,
	first_message_at timestamp,
	last_message_at  timestamp,
	UNIQUE (inbox, thread_id));
CREATE TABLE email_sync_status (
	inbox        text PRIMARY KEY,
	last_sync_at timestamptz,
	total_synced bigint NOT NULL DEFAULT 0,
	sync_errors  integer NOT NULL DEFAULT 0,
	status       text,
	operation_id uuid);
CREATE TABLE error_logs (
	id            bigserial PRIMARY KEY,
	operation_id  uuid,
	occurred_at   timestamptz NOT NULL DEFAULT now(),
	severity      text NOT NULL,
	error_type    text,
	error_message text NOT NULL,
	context       jsonb NOT NULL DEFAULT '{}',
	inbox         text);
INSERT INTO email_messages (inbox, message_id, thread_id, subject, text_body, received_at)
	VALUES ('customer_support', 'backend-1@example.com', 'thread_000000000001', 'Booked by the backend', 'hello', '2025-11-01 10:00');
INSERT INTO email_threads (inbox, thread_id, subject, message_count) VALUES ('customer_support', 'thread_000000000001', 'Booked', 1);
INSERT INTO email_sync_status (inbox, total_synced, status) VALUES ('customer_support', 1, 'idle');
INSERT INTO error_logs (severity, error_message, inbox) VALUES ('error', 'IDLE monitor lost its connection', 'customer_support');`,
	rows: []string{
		`SELECT row_to_json(t)::text FROM email_messages t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM email_threads t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM email_sync_status t WHERE inbox = 'customer_support'`,
		`SELECT row_to_json(t)::text FROM error_logs t WHERE inbox = 'customer_support'`,
	},
	// subject is varchar(40): compare the first 40 characters.
	stored: `SELECT message_id || '|' || thread_id || '|' || subject || '|' || from_address || '|' ||
		array_to_string(to_addresses, ',') || '|' || to_char(received_at, 'YYYY-MM-DD HH24:MI:SS')
		FROM email_messages WHERE inbox = 'demo' AND synced_at IS NOT NULL AND text_body IS NOT NULL`,
	errorRows: `SELECT count(*) FROM error_logs WHERE inbox = 'demo' AND severity IN ('error', 'warning') AND operation_id IS NOT NULL`,
}}

func TestAdoptBackendTables(t *testing.T) {
	t.Parallel()
	opts := mailgen.DefaultOptions()
	opts.NoMessageIDRatio = 0
	mails := opts.Generate(13, 60)
	largest := 0
	for _, m := range mails {
		largest = max(largest, len(m.Raw))
	}
	// One message over --max-message-size: a failure for error_logs.
	big := []byte("From: a@example.com\r\nTo: cs@example.com\r\nSubject: too big\r\nMessage-ID: <big@example.com>\r\n\r\n" +
		strings.Repeat("x", largest+1000) + "\r\n")
	maxSize := fmt.Sprint(largest + 500)
	date := time.Date(2025, 11, 3, 4, 5, 6, 0, time.UTC)

	// What the tool's own schema stores, to compare with.
	own := newFixture(t)
	own.imap.AppendMails(t, mails)
	own.imap.Append(t, big, date)
	own.migrate()
	own.mustRun(1, "--inbox", "demo", "--max-message-size", maxSize)
	want := own.strings(ownStored)

	for _, s := range backendSchemas {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.imap.AppendMails(t, mails)
			f.imap.Append(t, big, date)
			f.mustExec(s.ddl)
			backend := f.backendRows(s.rows)

			// --dry-run says what would change, and changes nothing.
			out := f.mustRun(0, "migrate", "--dry-run")
			f.wantLine(out, "🔍 DRY RUN: nothing is changed")
			for _, tbl := range []string{"email_messages", "email_threads", "email_sync_status", "error_logs"} {
				f.wantLine(out, "🤝 Would adopt "+tbl)
			}
			f.wantLine(out, "➕ Would create email_sync_uids")
			f.wantLine(out, "CREATE TABLE IF NOT EXISTS email_sync_uids (")
			if strings.Contains(out, "ALTER TABLE email_messages") || strings.Contains(out, "CREATE TABLE IF NOT EXISTS email_messages") {
				t.Fatalf("dry run would alter or create the backend's email_messages:\n%s", out)
			}
			if f.count(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()
				AND (tablename LIKE 'backfill%' OR tablename = 'email_sync_uids')`) != 0 {
				t.Fatal("migrate --dry-run created tables")
			}

			out = f.mustRun(0, "migrate")
			f.wantLine(out, "🤝 Adopted email_messages")
			f.wantLine(f.mustRun(0, "migrate"), "✅ Schema is up to date")

			out = f.mustRun(1, "--inbox", "demo", "--max-message-size", maxSize)
			f.wantLine(out, "Total errors:  1 ❌")
			if got := f.strings(s.stored); !slices.Equal(got, cutSubjects(want, s.name)) {
				t.Fatalf("stored rows differ from the tool's own schema's:\n got %q\nwant %q", got, want)
			}
			if n := f.count(s.errorRows); n < 1 {
				t.Fatalf("the run's failure is not in the backend's error_logs (%s)", s.errorRows)
			}
			if n := f.count(`SELECT coalesce(sum(message_count), 0) FROM email_threads WHERE inbox = 'demo'`); n != len(want) {
				t.Fatalf("email_threads counts %d messages for demo, want %d", n, len(want))
			}

			// A re-run adds nothing and downloads nothing (the oversized
			// message is tried again, and not downloaded).
			before := f.strings(`SELECT row_to_json(t)::text FROM email_messages t`)
			threads := f.strings(`SELECT row_to_json(t)::text FROM email_threads t`)
			out = f.mustRun(1, "--inbox", "demo", "--max-message-size", maxSize)
			f.wantLine(out, "Total synced:  0 ✅")
			f.wantLine(out, "Downloaded:    0 message bodies")
			if !slices.Equal(f.strings(`SELECT row_to_json(t)::text FROM email_messages t`), before) ||
				!slices.Equal(f.strings(`SELECT row_to_json(t)::text FROM email_threads t`), threads) {
				t.Fatal("the re-run changed email_messages or email_threads")
			}
			if got := f.backendRows(s.rows); !slices.Equal(got, backend) {
				t.Fatalf("the backend's rows changed:\n got %q\nwant %q", got, backend)
			}

			// status and errors read the backend's shapes.
			var sts []pgsink.InboxStatus
			if err := json.Unmarshal([]byte(f.mustRun(0, "status", "--json")), &sts); err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(sts, func(st pgsink.InboxStatus) bool { return st.Inbox == "demo" })
			if i < 0 || sts[i].Messages != int64(len(want)) || sts[i].TotalSynced != int64(len(want)) {
				t.Fatalf("status --json = %+v, want demo with %d messages", sts, len(want))
			}
			opID := regexp.MustCompile(`Operation ID:\s+(\S+)`).FindStringSubmatch(out)
			if opID == nil {
				t.Fatalf("no operation id in the output:\n%s", out)
			}
			out = f.mustRun(0, "errors", "--operation", opID[1])
			if !strings.Contains(out, "oversized") || !strings.Contains(out, "demo") || strings.Contains(out, "IDLE monitor") {
				t.Fatalf("backfill errors --operation does not list just the run's oversized message:\n%s", out)
			}
			if out := f.mustRun(0, "errors"); !strings.Contains(out, "IDLE monitor lost its connection") {
				t.Fatalf("backfill errors does not list the backend's own error:\n%s", out)
			}
			if out := f.mustRun(0, "status"); !strings.Contains(out, "customer_support") || !strings.Contains(out, "demo") {
				t.Fatalf("backfill status:\n%s", out)
			}
		})
	}
}

// cutSubjects cuts the subject field of the tool's rows as a varchar(40)
// does, for the schema that has one.
func cutSubjects(rows []string, schema string) []string {
	if !strings.HasPrefix(schema, "bigserial") {
		return rows
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		f := strings.Split(r, "|")
		if s := []rune(f[2]); len(s) > 40 {
			f[2] = string(s[:40])
		}
		out[i] = strings.Join(f, "|")
	}
	slices.Sort(out)
	return out
}

func (f *fixture) strings(sql string) []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), sql)
	if err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (f *fixture) backendRows(queries []string) []string {
	f.t.Helper()
	var out []string
	for _, q := range queries {
		rows := f.strings(q)
		if len(rows) == 0 {
			f.t.Fatalf("no backend row: %s", q)
		}
		out = append(out, rows...)
	}
	return out
}

// A backend email_messages with no unique key on message_id, addresses as
// plain text, and more rows than an index is built on in one go: migrate
// adds one index, CONCURRENTLY, and creates the other tables itself.
func TestAdoptMessagesWithoutUniqueKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	opts := mailgen.DefaultOptions()
	opts.NoMessageIDRatio = 0
	f.imap.AppendMails(t, opts.Generate(17, 40))
	f.mustExec(`CREATE TABLE email_messages (
		id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		inbox        text NOT NULL,
		message_id   text NOT NULL,
		thread_id    text,
		subject      text,
		from_address text,
		to_addresses text,
		received_at  timestamptz NOT NULL);
	INSERT INTO email_messages (inbox, message_id, subject, received_at)
		SELECT 'customer_support', 'backend-' || i || '@example.com', 'Backend ' || i, '2025-11-01 10:00Z'
		FROM generate_series(1, 10001) AS i`)
	backend := f.strings(`SELECT md5(string_agg(row_to_json(t)::text, ',' ORDER BY id)) FROM email_messages t`)

	out := f.mustRun(0, "migrate", "--dry-run")
	f.wantLine(out, "🤝 Would adopt email_messages (found, not created by backfill; its 10001 rows are left as they are)")
	f.wantLine(out, "no unique key on message_id: each insert first checks the Message-ID is not stored")
	f.wantLine(out, "CREATE INDEX CONCURRENTLY IF NOT EXISTS backfill_email_messages_message_id_idx ON email_messages (inbox, md5(message_id));")
	f.wantLine(out, "➕ Would create email_threads")
	if f.count(`SELECT count(*) FROM pg_indexes WHERE indexname = 'backfill_email_messages_message_id_idx'`) != 0 {
		t.Fatal("migrate --dry-run built the index")
	}
	f.migrate()
	if f.count(`SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname = 'backfill_email_messages_message_id_idx' AND i.indisvalid`) != 1 {
		t.Fatal("migrate did not build a valid index to find Message-IDs by")
	}

	out = f.mustRun(0, "--inbox", "demo")
	stored := summaryCount(t, out, "synced")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo'`); n != stored || n == 0 {
		t.Fatalf("email_messages has %d demo rows, the run says it stored %d", n, stored)
	}
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo' AND to_addresses LIKE '%@%'`); n == 0 {
		t.Fatal("no To addresses were written as text")
	}
	if n := f.count(`SELECT count(*) FROM (SELECT message_id FROM email_messages GROUP BY 1 HAVING count(*) > 1) AS d`); n != 0 {
		t.Fatalf("%d Message-IDs are stored twice", n)
	}
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Total synced:  0 ✅")

	// Rows deleted by hand come back, here too.
	f.mustExec(`DELETE FROM email_messages WHERE id IN (SELECT id FROM email_messages WHERE inbox = 'demo' ORDER BY id LIMIT 3)`)
	f.wantLine(f.mustRun(0, "--inbox", "demo", "--dry-run"), fmt.Sprintf("New: 3, already stored or duplicates: %d", 40-3))
	f.wantLine(f.mustRun(0, "--inbox", "demo"), "Total synced:  3 ✅")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = 'demo'`); n != stored {
		t.Fatalf("after the deleted rows came back: %d rows, want %d", n, stored)
	}
	if got := f.strings(`SELECT md5(string_agg(row_to_json(t)::text, ',' ORDER BY id)) FROM email_messages t
		WHERE inbox = 'customer_support'`); !slices.Equal(got, backend) {
		t.Fatal("the backend's rows changed")
	}
}

// A table that cannot be filled safely: migrate exits 2, names each column
// and what to do, and changes nothing; so does a run.
func TestIncompatibleBackendTableExits2(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.imap.AppendGenerated(t, 3, 5)
	f.mustExec(`CREATE TABLE email_messages (
		id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
		account_id  integer NOT NULL,
		inbox       text NOT NULL,
		message_id  text NOT NULL UNIQUE,
		thread_id   uuid,
		received_at timestamptz NOT NULL)`)
	for _, args := range [][]string{{"migrate", "--dry-run"}, {"migrate"}} {
		code, out := f.run(args...)
		if code != 2 {
			t.Fatalf("backfill %s: exit %d, want 2\n%s", strings.Join(args, " "), code, out)
		}
		for _, want := range []string{
			"email_messages.account_id: it is NOT NULL without a default, and backfill has no value for it. " +
				"Give it a default (ALTER TABLE email_messages ALTER COLUMN account_id SET DEFAULT ...) or allow NULL",
			"email_messages.thread_id: its type is uuid, and backfill writes text here (thread_id)",
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("backfill %s does not say %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
	if f.count(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'email_messages'`) != 0 {
		t.Fatal("a refused migrate created tables")
	}
	code, out := f.run("--inbox", "demo")
	if code != 2 || f.count(`SELECT count(*) FROM email_messages`) != 0 {
		t.Fatalf("a run on the refused schema: exit %d, want 2, and no rows\n%s", code, out)
	}

	// The way out the error offers: tables of backfill's own in a schema
	// of their own.
	f.mustExec(`CREATE SCHEMA backfill`)
	own := *f
	sep := "?"
	if strings.Contains(f.dbURL, "?") {
		sep = "&"
	}
	own.environ = append(slices.Clone(f.environ), "DATABASE_URL="+f.dbURL+sep+"search_path=backfill")
	own.migrate()
	own.mustRun(0, "--inbox", "demo")
	if f.count(`SELECT count(*) FROM backfill.email_messages`) == 0 || f.count(`SELECT count(*) FROM public.email_messages`) != 0 {
		t.Fatal("with search_path=backfill, the run did not fill tables of its own")
	}
	f.mustExec(`DROP SCHEMA backfill CASCADE`)

	// Made fillable, then changed again by the backend after migrate: the
	// run exits 2 naming the new column.
	f.mustExec(`ALTER TABLE email_messages ALTER COLUMN account_id SET DEFAULT 1;
		ALTER TABLE email_messages ALTER COLUMN thread_id TYPE text`)
	f.migrate()
	f.mustExec(`ALTER TABLE email_messages ADD COLUMN tenant text NOT NULL DEFAULT 'x';
		ALTER TABLE email_messages ALTER COLUMN tenant DROP DEFAULT`)
	code, out = f.run("--inbox", "demo")
	if code != 2 || !strings.Contains(out, "email_messages.tenant: it is NOT NULL without a default") {
		t.Fatalf("a run after the backend added a NOT NULL column: exit %d, want 2 naming it\n%s", code, out)
	}
	if f.count(`SELECT count(*) FROM email_messages`) != 0 {
		t.Fatal("the refused run stored rows")
	}
}

// A Message-ID longer than the backend's varchar: stored cut, with a
// warning, and a re-run still finds it (settled UIDs, dry-run look-ups and
// a redelivered copy all use the cut id).
func TestAdoptedVarcharMessageIDIsCutConsistently(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	date := time.Date(2025, 11, 3, 4, 5, 6, 0, time.UTC)
	long := "<" + strings.Repeat("ä", 40) + "@example.com>"
	raw := []byte("From: a@example.com\r\nTo: cs@example.com\r\nSubject: long id\r\nMessage-ID: " + long + "\r\n\r\nhi\r\n")
	f.imap.Append(t, raw, date)
	f.imap.Append(t, raw, date) // redelivered: settled as a duplicate
	f.imap.Append(t, []byte("From: b@example.com\r\nTo: cs@example.com\r\nSubject: short\r\nMessage-ID: <s@x>\r\n\r\nhi\r\n"), date)
	f.mustExec(`CREATE TABLE email_messages (
		id          bigserial PRIMARY KEY,
		inbox       text NOT NULL,
		message_id  varchar(30) NOT NULL,
		received_at timestamptz NOT NULL,
		UNIQUE (inbox, message_id))`)
	f.migrate()
	out := f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "Total synced:  2 ✅")
	f.wantLine(out, "value_cut (warning): 1")
	if n := f.count(`SELECT count(*) FROM email_messages WHERE message_id = $1`, strings.Repeat("ä", 30)); n != 1 {
		t.Fatalf("%d rows with the Message-ID cut to 30 characters, want 1", n)
	}
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "⏭️  3 already synced by earlier runs")
	f.wantLine(out, "Downloaded:    0 message bodies")
	// Without settled UIDs, the dry run looks the Message-IDs up.
	f.mustExec(`DELETE FROM email_sync_uids`)
	f.wantLine(f.mustRun(0, "--inbox", "demo", "--dry-run"), "New: 0, already stored or duplicates: 3")
	f.wantLine(f.mustRun(0, "--inbox", "demo"), "Total synced:  0 ✅")
	out = f.mustRun(0, "--inbox", "demo")
	f.wantLine(out, "⏭️  3 already synced by earlier runs")
	f.wantLine(out, "Downloaded:    0 message bodies")
}

// The backend's ErrorLog table often predates the email tables: only it is
// adopted, the rest is created, and the tool's own fast path stays.
func TestAdoptErrorLogsOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	date := time.Date(2025, 11, 3, 4, 5, 6, 0, time.UTC)
	f.imap.Append(t, []byte("From: a@example.com\r\nTo: cs@example.com\r\nSubject: small\r\nMessage-ID: <small@x>\r\n\r\nhi\r\n"), date)
	big := f.imap.Append(t, []byte("From: a@example.com\r\nTo: cs@example.com\r\nSubject: big\r\nMessage-ID: <big@x>\r\n\r\n"+
		strings.Repeat("x", 5000)+"\r\n"), date)
	f.mustExec(`CREATE TABLE error_logs (
		id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
		level      varchar(20) NOT NULL,
		message    text NOT NULL,
		details    jsonb,
		created_at timestamptz NOT NULL DEFAULT now())`)
	out := f.mustRun(0, "migrate")
	f.wantLine(out, "🤝 Adopted error_logs (found, not created by backfill; its 0 rows are left as they are)")
	f.wantLine(out, "➕ Created email_messages")
	f.mustRun(1, "--inbox", "demo", "--max-message-size", "2048")
	if n := f.count(`SELECT count(*) FROM error_logs WHERE level = 'ERROR' AND details->>'error_type' = 'oversized'
		AND (details->>'imap_uid')::bigint = $1`, int64(big)); n != 1 {
		t.Fatalf("error_logs has %d rows for the oversized UID %d, want 1", n, big)
	}
	var sts []pgsink.InboxStatus
	if err := json.Unmarshal([]byte(f.mustRun(0, "status", "--json")), &sts); err != nil || len(sts) != 1 {
		t.Fatalf("status --json = %+v, %v", sts, err)
	}
	if sts[0].Messages != 1 || sts[0].LastRunErrors != 1 {
		t.Fatalf("status --json = %+v, want 1 message and 1 error in the last run", sts[0])
	}
}
