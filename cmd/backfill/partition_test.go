package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/internal/imaptest"
)

// readmeSQL returns the ```sql block that follows <!-- ddl:NAME --> in the
// README: the tests apply the DDL users copy, so the two cannot drift.
func readmeSQL(t testing.TB, name string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- ddl:"+name+" -->\n```sql\n")
	if !ok {
		t.Fatalf("README.md has no <!-- ddl:%s --> followed by a ```sql block", name)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("README.md: the ddl:%s block is not closed", name)
	}
	return block
}

// TestPartitionedMessages applies the README's partitioning DDL to a
// database holding one inbox, then backfills two inboxes into the
// partitioned email_messages: rows land in their inbox's partition, a
// re-run adds nothing, the stored rows keep their ids, and a folder added
// to one inbox's row touches no row of the other partition at the same
// ctid.
func TestPartitionedMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ddl string
		// partitions are the partition each inbox's rows must be in; ""
		// for a hash partition, whichever it is.
		partitions map[string]string
	}{
		{ddl: "partition-hash", partitions: map[string]string{"customer_support": "", "payments": ""}},
		{ddl: "partition-list", partitions: map[string]string{
			"customer_support": "email_messages_customer_support", "payments": "email_messages_payments"}},
	} {
		t.Run(tc.ddl, func(t *testing.T) {
			t.Parallel()
			testPartitioned(t, readmeSQL(t, tc.ddl), tc.partitions)
		})
	}
}

func testPartitioned(t *testing.T, ddl string, partitions map[string]string) {
	ctx := context.Background()
	f := newFixture(t)
	pay := imaptest.Start(t)
	f.environ = append(f.environ,
		"BACKFILL_INBOX_CUSTOMER_SUPPORT="+f.imap.URL("INBOX"), "BACKFILL_INBOX_CUSTOMER_SUPPORT_PASSWORD="+f.imap.Password,
		"BACKFILL_INBOX_PAYMENTS="+pay.URL("INBOX"), "BACKFILL_INBOX_PAYMENTS_PASSWORD="+pay.Password)
	date := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	f.imap.CreateMailbox(t, "Archive")
	// cs1 is in INBOX and Archive; cs5 only in Archive. payments has five
	// messages, so every customer_support row shares its ctid with one of
	// them, and pay1 has the Message-ID of cs1.
	for i := 1; i <= 4; i++ {
		f.imap.Append(t, folderMail(fmt.Sprintf("cs%d@example.com", i), "alice@example.com", "cs@myhibachichef.com", fmt.Sprintf("Booking %d", i)), date)
	}
	for _, id := range []string{"cs1@example.com", "cs5@example.com"} {
		if _, err := f.imap.AppendRaw("Archive", folderMail(id, "alice@example.com", "cs@myhibachichef.com", "Archived "+id), date); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"cs1@example.com", "pay2@example.com", "pay3@example.com", "pay4@example.com", "pay5@example.com"} {
		pay.Append(t, folderMail(id, "bob@example.org", "payments@myhibachichef.com", fmt.Sprintf("Invoice %d", i)), date)
	}

	f.migrate()
	f.mustRun(0, "--inbox", "customer_support")
	before := f.ids()
	if len(before) != 4 {
		t.Fatalf("%d rows before partitioning, want 4", len(before))
	}
	indexes := f.indexes("email_messages")
	f.mustExec(ddl)
	// The DDL rebuilds every index migrate made (a migration that adds one
	// has to add it to the README's DDL too); the primary key gains inbox.
	indexes["email_messages_pkey"] = "unique (inbox, id)"
	if got := f.indexes("email_messages"); !maps.Equal(got, indexes) {
		t.Errorf("indexes after the README's DDL:\n%v\nwant\n%v", got, indexes)
	}
	if n := f.count(`SELECT count(*) FROM pg_class WHERE oid = 'email_messages'::regclass AND relkind = 'p'`); n != 1 {
		t.Fatal("email_messages is not a partitioned table after the README's DDL")
	}
	f.wantLine(f.mustRun(0, "migrate"), "✅ Schema is up to date")

	for range 2 { // the second round must change nothing
		f.mustRun(0, "--inbox", "payments")
		f.mustRun(0, "--inbox", "customer_support", "--folders", "INBOX,Archive")
	}

	for inbox, want := range map[string]int{"customer_support": 5, "payments": 5} {
		if n := f.count(`SELECT count(*) FROM email_messages WHERE inbox = $1`, inbox); n != want {
			t.Errorf("%s: %d rows, want %d", inbox, n, want)
		}
		if n := f.count(`SELECT count(DISTINCT md5(message_id)) FROM email_messages WHERE inbox = $1`, inbox); n != want {
			t.Errorf("%s: %d distinct Message-IDs, want %d", inbox, n, want)
		}
		if n := f.count(`SELECT coalesce(sum(message_count), 0) FROM email_threads WHERE inbox = $1`, inbox); n != want {
			t.Errorf("%s: threads count %d messages, want %d", inbox, n, want)
		}
	}

	// Each inbox's rows are in one partition of email_messages, the one the
	// DDL names, and two inboxes in two partitions.
	rows, err := f.pool.Query(ctx, `SELECT inbox, array_agg(DISTINCT tableoid::regclass::text) FROM email_messages GROUP BY inbox`)
	if err != nil {
		t.Fatal(err)
	}
	where := map[string][]string{}
	var inbox string
	var parts []string
	if _, err := pgx.ForEachRow(rows, []any{&inbox, &parts}, func() error {
		where[inbox] = slices.Clone(parts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for inbox, want := range partitions {
		got := where[inbox]
		if len(got) != 1 || want != "" && got[0] != want {
			t.Errorf("%s: rows in partitions %q, want all in one (%q)", inbox, got, want)
			continue
		}
		if other, ok := seen[got[0]]; ok {
			t.Errorf("%s and %s share partition %s: the test needs them apart", inbox, other, got[0])
		}
		seen[got[0]] = inbox
		if n := f.count(`SELECT count(*) FROM pg_inherits WHERE inhrelid = $1::regclass AND inhparent = 'email_messages'::regclass`, got[0]); n != 1 {
			t.Errorf("%s is not a partition of email_messages", got[0])
		}
	}

	// The stored rows kept their ids; new rows continue the sequence.
	after := f.ids()
	for key, id := range before {
		if after[key] != id {
			t.Errorf("%s: id %d after partitioning, was %d", key, after[key], id)
		}
	}
	var maxBefore int64
	for _, id := range before {
		maxBefore = max(maxBefore, id)
	}
	for key, id := range after {
		if _, old := before[key]; !old && id <= maxBefore {
			t.Errorf("%s: new row has id %d, not past the stored rows' %d", key, id, maxBefore)
		}
	}

	// A folder added to one inbox's row leaves the other partition alone.
	got := map[string]string{}
	rows, err = f.pool.Query(ctx, `SELECT inbox || ' ' || message_id, array_to_string(folders, ',') FROM email_messages`)
	if err != nil {
		t.Fatal(err)
	}
	var key, folders string
	if _, err := pgx.ForEachRow(rows, []any{&key, &folders}, func() error {
		got[key] = folders
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"customer_support cs1@example.com": "INBOX,Archive", "customer_support cs2@example.com": "INBOX",
		"customer_support cs3@example.com": "INBOX", "customer_support cs4@example.com": "INBOX",
		"customer_support cs5@example.com": "Archive",
		"payments cs1@example.com":         "INBOX", "payments pay2@example.com": "INBOX", "payments pay3@example.com": "INBOX",
		"payments pay4@example.com": "INBOX", "payments pay5@example.com": "INBOX",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: folders %q, want %q", k, got[k], w)
		}
	}

	if bad := f.uniqueWithoutInbox("email_messages"); len(bad) > 0 {
		t.Errorf("unique indexes of the partitioned email_messages without inbox: %q", bad)
	}
}

// ids returns every email_messages row's id by "inbox message_id".
func (f *fixture) ids() map[string]int64 {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT inbox || ' ' || message_id, id FROM email_messages`)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int64{}
	var key string
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&key, &id}, func() error {
		out[key] = id
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// indexes returns table's indexes by name: their key columns, and whether
// they are unique.
func (f *fixture) indexes(table string) map[string]string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `
		SELECT i.indexrelid::regclass::text,
			CASE WHEN i.indisunique THEN 'unique ' ELSE '' END || '(' || array_to_string(array(
				SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k), ', ') || ')'
		FROM pg_index i WHERE i.indrelid = $1::regclass`, table)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	var name, def string
	if _, err := pgx.ForEachRow(rows, []any{&name, &def}, func() error {
		out[name] = def
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// uniqueWithoutInbox lists the unique indexes of tables that do not have
// inbox among their key columns: what PostgreSQL refuses on a table
// partitioned by inbox and Citus on one distributed by it.
func (f *fixture) uniqueWithoutInbox(tables ...string) []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `
		SELECT i.indexrelid::regclass::text
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'inbox' AND NOT a.attisdropped
		WHERE i.indisunique AND c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition
			AND c.relname = ANY($1::text[])
			AND NOT a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
		ORDER BY 1`, tables)
	if err != nil {
		f.t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

// TestCitusKeys checks the README's Citus DDL against the schema `backfill
// migrate` makes, as far as PostgreSQL alone can: the tables it distributes
// exist with one NOT NULL inbox type, no table keyed by inbox is left out
// but error_logs, and once ddl:citus-keys ran every unique index of a
// distributed table contains inbox, as Citus requires (before it, the
// primary key of email_messages does not).
func TestCitusKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.migrate()

	var distributed []string
	for _, m := range regexp.MustCompile(`create_distributed_table\('(\w+)', 'inbox'`).FindAllStringSubmatch(readmeSQL(t, "citus"), -1) {
		distributed = append(distributed, m[1])
	}
	rows, err := f.pool.Query(context.Background(), `
		SELECT c.relname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE a.attname = 'inbox' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			AND c.relnamespace = current_schema()::regnamespace
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var keyed []string
	var table, typ string
	var notNull bool
	if _, err := pgx.ForEachRow(rows, []any{&table, &typ, &notNull}, func() error {
		keyed = append(keyed, table)
		if slices.Contains(distributed, table) && (typ != "text" || !notNull) {
			t.Errorf("%s.inbox is %s (NOT NULL %v): a co-located distribution column must be text NOT NULL like email_messages'", table, typ, notNull)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range distributed {
		if !slices.Contains(keyed, d) {
			t.Errorf("README distributes %s, which has no inbox column (or does not exist)", d)
		}
	}
	if left := slices.DeleteFunc(slices.Clone(keyed), func(s string) bool { return slices.Contains(distributed, s) }); !slices.Equal(left, []string{"error_logs"}) {
		t.Errorf("tables with an inbox column the README does not distribute: %q, want only error_logs", left)
	}

	if bad := f.uniqueWithoutInbox(distributed...); !slices.Equal(bad, []string{"email_messages_pkey"}) {
		t.Errorf("before ddl:citus-keys, unique indexes without inbox: %q, want only email_messages_pkey", bad)
	}
	f.mustExec(readmeSQL(t, "citus-keys"))
	if bad := f.uniqueWithoutInbox(distributed...); len(bad) > 0 {
		t.Errorf("after ddl:citus-keys, unique indexes Citus refuses (no inbox): %q", bad)
	}
	// The primary key change leaves backfill working: a run and a re-run.
	f.imap.Append(t, folderMail("a@example.com", "alice@example.com", "cs@myhibachichef.com", "Hello"), time.Now())
	f.mustRun(0, "--inbox", "demo")
	f.mustRun(0, "--inbox", "demo")
	if n := f.count(`SELECT count(*) FROM email_messages`); n != 1 {
		t.Errorf("%d rows after a run and a re-run, want 1", n)
	}
}
