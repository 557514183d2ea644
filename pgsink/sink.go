// Package pgsink writes messages to PostgreSQL: batched COPY plus an
// idempotent insert, thread counters from rows really inserted, the per-inbox
// run lock, sync status and error_logs.
package pgsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/message"
	"github.com/myhibachi/backfill/migrations"
	"github.com/myhibachi/backfill/threading"
)

// Sink is a pool of connections to the target database.
type Sink struct {
	pool *pgxpool.Pool

	mu        sync.Mutex
	w         *writer             // nil until first use; see writer
	locks     map[string]*runLock // run locks held, by inbox
	lockCheck time.Duration       // how often a lock is checked; 0: lockCheckEvery
}

// stagingDDL runs once per connection: a per-batch CREATE would cost a
// catalog write every batch. ON COMMIT DELETE ROWS empties it for free.
const stagingDDL = `CREATE TEMP TABLE IF NOT EXISTS backfill_staging (
	ord              integer,
	message_id       text,
	thread_id        text,
	from_address     text,
	from_name        text,
	to_addresses     text[],
	cc_addresses     text[],
	subject          text,
	text_body        text,
	html_body        text,
	received_at      timestamptz,
	sent_at          timestamptz,
	attachments      jsonb,
	in_reply_to      text,
	"references"     text[],
	size_bytes       bigint,
	imap_uid         bigint,
	imap_uidvalidity bigint,
	is_read          boolean,
	is_starred       boolean,
	labels           text[],
	folders          text[],
	gmail_msgid      bigint,
	gmail_thread_id  bigint,
	participants     text[]
) ON COMMIT DELETE ROWS`

var stagingColumns = []string{
	"ord", "message_id", "thread_id", "from_address", "from_name", "to_addresses", "cc_addresses",
	"subject", "text_body", "html_body", "received_at", "sent_at", "attachments", "in_reply_to",
	"references", "size_bytes", "imap_uid", "imap_uidvalidity", "is_read", "is_starred", "labels",
	"folders", "gmail_msgid", "gmail_thread_id", "participants",
}

// Open connects to dsn with at most maxConns connections.
func Open(ctx context.Context, dsn string, maxConns int) (*Sink, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, &errlog.CriticalError{Type: "bad_database_url", Err: fmt.Errorf("parse database URL: %w", err)}
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "backfill"
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, stagingDDL)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redactDSN(cfg), err)
	}
	return &Sink{pool: pool}, nil
}

// Close closes every connection.
func (s *Sink) Close() { s.pool.Close() }

// Pool exposes the pool for migrations and read-only subcommands.
func (s *Sink) Pool() *pgxpool.Pool { return s.pool }

// CheckSchema returns a critical error telling the user to run `backfill
// migrate` when the schema is missing or behind, or what to change when a
// table the backend made cannot be filled safely. Otherwise it reads the
// tables' shape, once, and the sink writes them as they are.
func (s *Sink) CheckSchema(ctx context.Context) error {
	err := migrations.Check(ctx, s.pool)
	if err == nil {
		err = s.adapt(ctx)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, migrations.ErrNotMigrated):
		return &errlog.CriticalError{Type: "schema_missing", Err: err}
	case errors.Is(err, migrations.ErrIncompatible):
		return &errlog.CriticalError{Type: "schema_incompatible", Err: err}
	}
	return fmt.Errorf("check schema: %w", err)
}

// Batch is one unit of work: messages to insert and the UIDs it settles.
type Batch struct {
	Inbox string
	// Folder is the mailbox the batch was read from ("" means INBOX): its
	// UIDs are settled under it, new rows list it in folders, and a stored
	// row a message of the batch turned out to be gains it.
	Folder      string
	UIDValidity uint32
	Messages    []*message.Message
	// Done are UIDs settled without a row to store (duplicates of a
	// stored message). They and the UIDs of Messages are recorded in
	// email_sync_uids in the same transaction, with their Message-IDs, so
	// a re-run after a crash never fetches them again while their rows
	// exist.
	Done []Settled
	// Retry marks a repeat of a Store that failed, perhaps after its COMMIT
	// took effect and only the acknowledgement was lost. Rows that conflict
	// and carry this message's UID, UIDVALIDITY and Message-ID are then that
	// attempt's own and reported as inserted, so the run counts them as
	// stored rather than "already exists".
	Retry bool
}

// Settled is a UID finished without a row of its own, and the Message-ID
// whose stored row stands for it.
type Settled struct {
	UID       uint32
	MessageID string
	Folders   []string // as message.Message's: nil means the batch's folder
}

// Store writes a batch in one transaction and reports, for each message in
// order, whether it was inserted (false: a row with its Message-ID existed).
func (s *Sink) Store(ctx context.Context, b Batch) ([]bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin batch: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	w := s.writer()
	b.Folder = folderName(b.Folder)
	inserted := make([]bool, len(b.Messages))
	direct := false
	if len(b.Messages) > 0 && !b.Retry && w.direct {
		if direct, err = storeDirect(ctx, tx, b); err != nil {
			return nil, err
		}
	}
	if direct {
		for i := range inserted {
			inserted[i] = true
		}
	} else if len(b.Messages) > 0 {
		src := &copySource{msgs: b.Messages, pos: -1, folder: b.Folder}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"backfill_staging"}, stagingColumns, src); err != nil {
			return nil, fmt.Errorf("copy %d messages: %w", len(b.Messages), err)
		}
		rows, err := tx.Query(ctx, w.insert, b.Inbox)
		if err != nil {
			return nil, fmt.Errorf("insert messages: %w", err)
		}
		ords, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, fmt.Errorf("insert messages: %w", err)
		}
		for _, o := range ords {
			inserted[o] = true
		}
		// Only a retry pays for this look-up, and only once per batch.
		if b.Retry && len(ords) < len(b.Messages) && w.ownRows != "" {
			if err := ownRows(ctx, tx, w.ownRows, b, inserted); err != nil {
				return nil, err
			}
		}
	}
	if err := notifyNew(ctx, tx, w.notify, b, inserted); err != nil {
		return nil, err
	}
	// Every message of a committed batch is settled, inserted or not.
	uids := make([]int64, 0, len(b.Done)+len(b.Messages))
	ids := make([]string, 0, cap(uids))
	for _, d := range b.Done {
		uids = append(uids, int64(d.UID))
		ids = append(ids, w.storedID(d.MessageID)) // as its row has it
	}
	for _, m := range b.Messages {
		uids = append(uids, int64(m.UID))
		ids = append(ids, m.MessageID)
	}
	if len(uids) > 0 {
		// A UID settled before (its row deleted since, or recorded before
		// Message-IDs were) takes the Message-ID it has now.
		if _, err := tx.Exec(ctx, `INSERT INTO email_sync_uids (inbox, folder, uidvalidity, uid, message_id)
			SELECT $1, $2, $3, u, id FROM unnest($4::bigint[], $5::text[]) AS x(u, id)
			ON CONFLICT (inbox, folder, uidvalidity, uid) DO UPDATE SET message_id = EXCLUDED.message_id
			WHERE email_sync_uids.message_id IS DISTINCT FROM EXCLUDED.message_id`,
			b.Inbox, b.Folder, int64(b.UIDValidity), uids, ids); err != nil {
			return nil, fmt.Errorf("record done UIDs: %w", err)
		}
	}
	if err := addFolder(ctx, tx, w, b, inserted); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit batch: %w", err)
	}
	return inserted, nil
}

// addFolder adds the batch's folder, or the folders a message names, to
// the stored rows its messages turned out to be (a message seen before in
// another folder, or stored by an earlier run), in the batch's
// transaction, so that a message present in several folders is one row
// listing them all. Rows that list the folder already are left alone. An
// adopted email_messages is never updated (see migrations.BackendTables):
// there only new rows carry their folder.
func addFolder(ctx context.Context, tx pgx.Tx, w *writer, b Batch, inserted []bool) error {
	if w.addFolder == "" {
		return nil
	}
	// The Message-IDs of the stored rows to add each folder to, in the
	// order the folders come: a message names its own folders (Gmail's
	// labels), or is in the batch's.
	var order []string
	ids := map[string][]string{}
	add := func(id string, folders []string) {
		if folders == nil {
			folders = []string{b.Folder}
		}
		for _, f := range folders {
			if _, ok := ids[f]; !ok {
				order = append(order, f)
			}
			ids[f] = append(ids[f], id)
		}
	}
	for i, m := range b.Messages {
		if !inserted[i] {
			add(m.MessageID, m.Folders)
		}
	}
	for _, d := range b.Done {
		add(d.MessageID, d.Folders)
	}
	for _, f := range order {
		if _, err := tx.Exec(ctx, w.addFolder, b.Inbox, f, ids[f]); err != nil {
			return fmt.Errorf("add folder %s to stored messages: %w", f, err)
		}
	}
	return nil
}

// NotifyChannel is the channel on which each committed batch that inserted
// rows sends one notification, so that a backend can LISTEN instead of
// polling. The payload is JSON: {"inbox": "...", "ids": [...]} with the new
// rows' ids; when that would not fit in a notification (PostgreSQL takes
// under 8000 bytes: about 1,300 ids of four digits, 400 of nineteen),
// {"inbox", "count", "min_id", "max_id"} instead, a range that may also hold
// rows of other batches. Over an email_messages the backend made, the ids
// are its id column's (uuids are strings), the range only for integer ids;
// with no id column, {"inbox", "count"}. A batch retried after a lost
// COMMIT acknowledgement may announce the same rows twice. PostgreSQL
// commits notifying transactions one at a time (a cluster-wide lock held
// through the commit's WAL flush): cheap at a few batches a second, and
// measured at about 1 ms more per batch of 100 in all.
const NotifyChannel = "backfill_email"

// notifyNew sends the batch's notification in the batch's transaction:
// PostgreSQL delivers it at COMMIT, and never for a batch rolled back.
func notifyNew(ctx context.Context, tx pgx.Tx, sql string, b Batch, inserted []bool) error {
	var ids []string
	for i, m := range b.Messages {
		if inserted[i] {
			ids = append(ids, m.MessageID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, sql, b.Inbox, ids); err != nil {
		return fmt.Errorf("notify %d new rows on %s: %w", len(ids), NotifyChannel, err)
	}
	return nil
}

// addFolderSQL finds each row by one probe of the unique index (see
// ExistingMessageIDs) and updates it by its physical address. A ctid is
// unique only within one table: on an email_messages partitioned by inbox
// (README, "Outgrowing one PostgreSQL") each partition has a row at (0,1),
// so the inbox and Message-ID are checked too. A row marked expunged by
// watch is on the server again (moved to another folder before watch saw
// it arrive there, or moved back): its deleted_at goes.
const addFolderSQL = `UPDATE email_messages AS m
	SET folders = CASE WHEN $2::text = ANY(m.folders) THEN m.folders ELSE array_append(m.folders, $2::text) END,
		deleted_at = NULL
	WHERE m.ctid = ANY(ARRAY(SELECT e.ctid FROM unnest($3::text[]) AS x(id)
		CROSS JOIN LATERAL (SELECT ctid FROM email_messages
			WHERE inbox = $1 AND md5(message_id) = md5(x.id) LIMIT 1) AS e))
		AND m.inbox = $1 AND m.message_id = ANY($3::text[])
		AND (NOT ($2::text = ANY(m.folders)) OR m.deleted_at IS NOT NULL)`

// folderName is the folder a batch or settlement is recorded under: INBOX
// when none is named, as for rows from before folders were recorded.
func folderName(f string) string {
	if f == "" || strings.EqualFold(f, "INBOX") {
		return "INBOX"
	}
	return f
}

// notifyMaxPayload is PostgreSQL's limit on a payload: shorter than 8000
// bytes.
const notifyMaxPayload = 7999

// notifySQL finds the new rows' ids by their Message-IDs, one probe of the
// unique index each (COPY returns nothing), and sends the notification;
// $1 inbox, $2 the Message-IDs.
var notifySQL = notifyStatement("m.inbox = p.inbox AND md5(m.message_id) = md5(x.message_id)",
	", 'min_id', min(new.id), 'max_id', max(new.id)")

// notifyStatement is notifySQL for a table whose row of Message-ID
// x.message_id (of inbox p.inbox) is m WHERE probe; summary adds fields to
// the payload used when the ids do not fit.
func notifyStatement(probe, summary string) string {
	return fmt.Sprintf(`WITH p AS (SELECT $1::text AS inbox), new AS (
	SELECT m.id FROM p, unnest($2::text[]) AS x(message_id)
	CROSS JOIN LATERAL (SELECT m.id FROM email_messages m WHERE %s LIMIT 1) AS m
), payload AS (
	SELECT jsonb_build_object('inbox', p.inbox, 'ids', jsonb_agg(new.id ORDER BY new.id))::text AS ids,
		jsonb_build_object('inbox', p.inbox, 'count', count(*)%s)::text AS summary
	FROM p, new GROUP BY p.inbox
)
SELECT pg_notify(%s, CASE WHEN octet_length(ids) <= %d THEN ids ELSE summary END) FROM payload`,
		probe, summary, "'"+NotifyChannel+"'", notifyMaxPayload)
}

// storeDirect copies a batch straight into email_messages and folds it into
// email_threads. The dedup stage has already left out Message-IDs that are
// stored, so this is the common case, and it skips the staging table's
// write, read and anti-join: about a fifth of the database's work. A
// conflict (a live sync, or another tool, stored one of the messages
// meanwhile) rolls back to a savepoint and reports ok false; the caller then
// takes the staging path, which skips conflicts row by row.
func storeDirect(ctx context.Context, tx pgx.Tx, b Batch) (ok bool, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("savepoint: %w", err)
	}
	src := &copySource{msgs: b.Messages, pos: -1, inbox: b.Inbox, folder: b.Folder}
	if _, err := sp.CopyFrom(ctx, pgx.Identifier{"email_messages"}, messageColumns, src); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
			if rerr := sp.Rollback(ctx); rerr != nil {
				return false, fmt.Errorf("roll back to savepoint: %w", rerr)
			}
			return false, nil
		}
		return false, fmt.Errorf("copy %d messages: %w", len(b.Messages), err)
	}
	if err := sp.Commit(ctx); err != nil {
		return false, fmt.Errorf("release savepoint: %w", err)
	}
	t := foldThreads(b.Messages)
	if _, err := tx.Exec(ctx, threadsSQL, b.Inbox, t.ids, t.subjects, t.participants, t.counts, t.first, t.last); err != nil {
		return false, fmt.Errorf("update threads: %w", err)
	}
	return true, nil
}

// messageColumns are the email_messages columns a batch writes, in
// copySource's order after the staging-only ord.
var messageColumns = append([]string{"inbox"}, stagingColumns[1:len(stagingColumns)-1]...)

// threads are a batch's messages grouped by thread, as parallel arrays for
// unnest.
type threads struct {
	ids, subjects, participants []string
	counts                      []int32
	first, last                 []time.Time
}

// foldThreads groups messages by thread as insertSQL's GROUP BY does: the
// subject of the earliest message, the count, the first and last dates.
// Threads come out in thread_id order, so that concurrent batches lock
// their rows in the same order and do not deadlock.
func foldThreads(msgs []*message.Message) threads {
	type thread struct {
		id, subject, participants string
		count                     int32
		first, last               time.Time
	}
	byID := map[string]*thread{}
	for _, m := range msgs {
		t := byID[m.ThreadID]
		if t == nil {
			t = &thread{id: m.ThreadID, subject: m.Subject, participants: threading.Participants(m.FromAddress, m.To),
				first: m.ReceivedAt, last: m.ReceivedAt}
			byID[m.ThreadID] = t
		}
		t.count++
		if m.ReceivedAt.Before(t.first) {
			t.first, t.subject = m.ReceivedAt, m.Subject
		}
		if m.ReceivedAt.After(t.last) {
			t.last = m.ReceivedAt
		}
	}
	var out threads
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		t := byID[id]
		out.ids = append(out.ids, t.id)
		out.subjects = append(out.subjects, t.subject)
		out.participants = append(out.participants, t.participants)
		out.counts = append(out.counts, t.count)
		out.first = append(out.first, t.first)
		out.last = append(out.last, t.last)
	}
	return out
}

// threadsSQL folds a batch's threads into email_threads as insertSQL does.
const threadsSQL = `
INSERT INTO email_threads AS t (inbox, thread_id, subject, participants, message_count,
	first_message_at, last_message_at)
SELECT $1, id, subject, string_to_array(participants, ','), n, first_at, last_at
FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::timestamptz[])
	AS x(id, subject, participants, n, first_at, last_at)
` + threadMergeSQL

// threadMergeSQL folds a batch's thread counts into a stored thread: the
// subject is the earliest message's, the dates widen, the count adds up.
const threadMergeSQL = `
ON CONFLICT (inbox, thread_id) DO UPDATE SET
	message_count    = t.message_count + EXCLUDED.message_count,
	subject          = CASE WHEN EXCLUDED.first_message_at < t.first_message_at
	                        THEN EXCLUDED.subject ELSE t.subject END,
	first_message_at = LEAST(t.first_message_at, EXCLUDED.first_message_at),
	last_message_at  = GREATEST(t.last_message_at, EXCLUDED.last_message_at),
	updated_at       = now()`

// ownRows marks as inserted the messages a conflict skipped whose stored
// row has their UIDVALIDITY, UID and Message-ID: a row a run writes for a
// UID it has not settled yet can only come from an earlier attempt at this
// same batch (a rerun does not fetch UIDs recorded with a committed batch,
// and the run lock keeps other runs away).
func ownRows(ctx context.Context, tx pgx.Tx, sql string, b Batch, inserted []bool) error {
	var ords []int32
	var ids []string
	var uids, validities []int64
	for i, m := range b.Messages {
		if !inserted[i] {
			ords = append(ords, int32(i))
			ids = append(ids, m.MessageID)
			uids = append(uids, int64(m.UID))
			validities = append(validities, int64(m.UIDValidity))
		}
	}
	rows, err := tx.Query(ctx, sql, b.Inbox, ords, ids, uids, validities)
	if err != nil {
		return fmt.Errorf("find rows of an earlier attempt: %w", err)
	}
	own, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("find rows of an earlier attempt: %w", err)
	}
	for _, o := range own {
		inserted[o] = true
	}
	return nil
}

// ownRowsSQL finds the rows of an earlier attempt, with one index probe per
// message for the reason ExistingMessageIDs gives.
const ownRowsSQL = `SELECT x.ord
	FROM unnest($2::int[], $3::text[], $4::bigint[], $5::bigint[]) AS x(ord, message_id, uid, uidvalidity)
	CROSS JOIN LATERAL (SELECT imap_uid, imap_uidvalidity, message_id FROM email_messages
		WHERE inbox = $1 AND md5(message_id) = md5(x.message_id) LIMIT 1) AS m
	WHERE m.message_id = x.message_id AND m.imap_uid = x.uid AND m.imap_uidvalidity = x.uidvalidity`

// insertSQL moves the staged rows into email_messages, skipping Message-IDs
// already stored, and folds only the rows really inserted into
// email_threads, so a re-run can never inflate a thread's count. Threads are
// upserted in thread_id order so concurrent batches lock them in the same
// order and do not deadlock.
const insertSQL = "WITH ins AS (\n\t" + ownMessagesInsert + "\n), new AS (\n\tSELECT s.* FROM backfill_staging s JOIN ins USING (message_id)\n), thr AS (\n\t" +
	ownThreadsInsert + "\n)\nSELECT ord FROM new"

// ownMessagesInsert and ownThreadsInsert are insertSQL's parts, for the
// tool's own tables; genInsert puts them together with an adopted table's.
const ownMessagesInsert = `INSERT INTO email_messages (inbox, message_id, thread_id, from_address, from_name,
		to_addresses, cc_addresses, subject, text_body, html_body, received_at, sent_at,
		attachments, in_reply_to, "references", size_bytes, imap_uid, imap_uidvalidity,
		is_read, is_starred, labels, folders, gmail_msgid, gmail_thread_id)
	SELECT $1, message_id, thread_id, from_address, from_name, to_addresses, cc_addresses,
		subject, text_body, html_body, received_at, sent_at, attachments, in_reply_to,
		"references", size_bytes, imap_uid, imap_uidvalidity, is_read, is_starred, labels, folders,
		gmail_msgid, gmail_thread_id
	FROM backfill_staging ORDER BY ord
	ON CONFLICT (inbox, md5(message_id)) DO NOTHING
	RETURNING message_id`

const ownThreadsInsert = `INSERT INTO email_threads AS t (inbox, thread_id, subject, participants, message_count,
		first_message_at, last_message_at)
	-- A thread id hashes its participants, so max() just picks the one value.
	SELECT $1, thread_id, (array_agg(subject ORDER BY received_at))[1],
		max(participants), count(*), min(received_at), max(received_at)
	FROM new GROUP BY thread_id ORDER BY thread_id` + threadMergeSQL

// copySource streams a batch into COPY without building a second slice:
// into backfill_staging, or with inbox set, straight into email_messages.
type copySource struct {
	msgs   []*message.Message
	pos    int
	inbox  string
	folder string // the batch's: a row's folders unless its message names its own
}

// folders is the folders column of m's row.
func (c *copySource) folders(m *message.Message) []string {
	if m.Folders != nil {
		return m.Folders
	}
	return []string{c.folder}
}

func (c *copySource) Next() bool {
	c.pos++
	return c.pos < len(c.msgs)
}

func (c *copySource) Values() ([]any, error) {
	m := c.msgs[c.pos]
	atts := m.Attachments
	if atts == nil {
		atts = []message.Attachment{}
	}
	attJSON, err := json.Marshal(atts)
	if err != nil {
		return nil, fmt.Errorf("encode attachments of UID %d: %w", m.UID, err)
	}
	if c.inbox != "" {
		return []any{
			c.inbox, m.MessageID, m.ThreadID, m.FromAddress, m.FromName, nonNil(m.To), nonNil(m.Cc),
			m.Subject, nullable(m.TextBody), nullable(m.HTMLBody), m.ReceivedAt, m.SentAt, attJSON,
			nullable(m.InReplyTo), nonNil(m.References), m.SizeBytes, int64(m.UID), int64(m.UIDValidity),
			m.IsRead, m.IsStarred, nonNil(m.Labels), c.folders(m), gmailID(m.GmailMsgID), gmailID(m.GmailThreadID),
		}, nil
	}
	return []any{
		int32(c.pos), m.MessageID, m.ThreadID, m.FromAddress, m.FromName, nonNil(m.To), nonNil(m.Cc),
		m.Subject, nullable(m.TextBody), nullable(m.HTMLBody), m.ReceivedAt, m.SentAt, attJSON,
		nullable(m.InReplyTo), nonNil(m.References), m.SizeBytes, int64(m.UID), int64(m.UIDValidity),
		m.IsRead, m.IsStarred, nonNil(m.Labels), c.folders(m), gmailID(m.GmailMsgID), gmailID(m.GmailThreadID),
		participants(m),
	}, nil
}

// Err is nil: Values reports its own failures.
func (c *copySource) Err() error { return nil }

// participants is a message's thread participants as threadsSQL reads them
// (string_to_array gives '{}' for none, not '{""}').
func participants(m *message.Message) []string {
	p := threading.Participants(m.FromAddress, m.To)
	if p == "" {
		return []string{}
	}
	return strings.Split(p, ",")
}

// gmailID is a Gmail id as its bigint column takes it: NULL for none (Gmail's
// ids are never 0). Gmail's ids are unsigned 64-bit numbers, in practice
// below 2^63; one above would be stored as its two's complement, negative
// but still unique, and uint64(x) gives it back.
func gmailID(id uint64) *int64 {
	if id == 0 {
		return nil
	}
	v := int64(id)
	return &v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func redactDSN(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// InsertErrorLogs writes error_logs rows in one statement; it implements
// errlog.Store.
func (s *Sink) InsertErrorLogs(ctx context.Context, entries []errlog.Entry) error {
	if w := s.writer(); w.errTargets != nil {
		return s.insertAdoptedErrorLogs(ctx, w.errTargets, entries)
	}
	rows := make([][]any, len(entries))
	for i, e := range entries {
		ctxJSON, err := json.Marshal(e.Context)
		if err != nil || e.Context == nil {
			ctxJSON = []byte("{}")
		}
		var uid *int64
		if e.UID != 0 {
			u := int64(e.UID)
			uid = &u
		}
		rows[i] = []any{e.OperationID, e.OccurredAt, string(e.Severity), string(e.Category), e.Inbox,
			uid, nullable(e.MessageID), e.ErrorType, e.Message, int32(e.Attempts), ctxJSON}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"error_logs"}, []string{"operation_id", "occurred_at",
		"severity", "category", "inbox", "imap_uid", "message_id", "error_type", "error_message",
		"attempts", "context"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("write %d error_logs rows: %w", len(entries), err)
	}
	return nil
}

// insertAdoptedErrorLogs writes entries into the backend's own error_logs,
// each field in the column that means it.
func (s *Sink) insertAdoptedErrorLogs(ctx context.Context, targets []migrations.Target, entries []errlog.Entry) error {
	cols := make([]string, len(targets))
	for i, t := range targets {
		cols[i] = t.Col.Name
	}
	rows := make([][]any, len(entries))
	for i, e := range entries {
		rows[i] = errorRow(targets, e)
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"error_logs"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("write %d error_logs rows: %w", len(entries), err)
	}
	return nil
}

var _ errlog.Store = (*Sink)(nil)

// uuidOrNil keeps a zero UUID out of the table.
func uuidOrNil(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}
