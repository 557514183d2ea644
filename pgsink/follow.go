package pgsink

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/migrations"
)

// What `backfill watch` writes besides new rows: flag changes and
// expunges, found by UID through email_sync_uids. Rows are never deleted.

// Follows says what of a mailbox's changes the tables can record: flags
// (is_read, is_starred, labels) and deletions (deleted_at). The tool's own
// email_messages has both; an adopted one only the columns it has.
func (s *Sink) Follows() (flags, deletions bool) {
	w := s.writer()
	return w.flags != "", w.expunge != ""
}

// FlagState is one message's flags as the server has them, by UID.
type FlagState struct {
	UID       uint32
	IsRead    bool
	IsStarred bool
	Labels    []string // sorted, as message.SetFlags leaves them
}

// UpdateFlags writes the flags of the messages settled under these UIDs of
// folder ("" means INBOX) at uidValidity, where the stored row differs. It
// returns how many rows changed.
func (s *Sink) UpdateFlags(ctx context.Context, inbox, folder string, uidValidity uint32, states []FlagState) (int, error) {
	w := s.writer()
	if w.flags == "" || len(states) == 0 {
		return 0, nil
	}
	uids := make([]int64, len(states))
	read := make([]bool, len(states))
	starred := make([]bool, len(states))
	labels := make([]string, len(states))
	for i, st := range states {
		uids[i], read[i], starred[i] = int64(st.UID), st.IsRead, st.IsStarred
		l := st.Labels
		if l == nil {
			l = []string{}
		}
		js, err := json.Marshal(l)
		if err != nil {
			return 0, fmt.Errorf("encode labels of UID %d: %w", st.UID, err)
		}
		labels[i] = string(js)
	}
	tag, err := s.pool.Exec(ctx, w.flags, inbox, int64(uidValidity), uids, read, starred, labels, folderName(folder))
	if err != nil {
		return 0, fmt.Errorf("update flags: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// SettledUIDs returns the UIDs of folder ("" means INBOX) settled at
// uidValidity, ascending: those a follower compares with the server's to
// find expunges.
func (s *Sink) SettledUIDs(ctx context.Context, inbox, folder string, uidValidity uint32) ([]uint32, error) {
	rows, err := s.pool.Query(ctx, `SELECT uid FROM email_sync_uids WHERE inbox = $1 AND folder = $3 AND uidvalidity = $2 ORDER BY uid`,
		inbox, int64(uidValidity), folderName(folder))
	if err != nil {
		return nil, fmt.Errorf("read settled UIDs: %w", err)
	}
	var out []uint32
	var uid int64
	_, err = pgx.ForEachRow(rows, []any{&uid}, func() error {
		out = append(out, uint32(uid))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read settled UIDs: %w", err)
	}
	return out, nil
}

// MarkExpunged records that these UIDs left folder ("" means INBOX): they
// are no longer settled, and a row none of the inbox's other settled UIDs
// (in any folder) stands for gets deleted_at (when the table has it). It
// returns how many rows it marked.
func (s *Sink) MarkExpunged(ctx context.Context, inbox, folder string, uidValidity uint32, gone []uint32) (int, error) {
	if len(gone) == 0 {
		return 0, nil
	}
	uids := make([]int64, len(gone))
	for i, u := range gone {
		uids[i] = int64(u)
	}
	q := s.writer().expunge
	if q == "" {
		q = forgetUIDsSQL
	}
	var n int
	if err := s.pool.QueryRow(ctx, q, inbox, int64(uidValidity), uids, folderName(folder)).Scan(&n); err != nil {
		return 0, fmt.Errorf("record expunged UIDs: %w", err)
	}
	return n, nil
}

// forgetUIDsSQL forgets expunged UIDs where there is no deleted_at to set.
const forgetUIDsSQL = `WITH gone AS (
	DELETE FROM email_sync_uids WHERE inbox = $1 AND folder = $4 AND uidvalidity = $2 AND uid = ANY($3::bigint[]) RETURNING 1)
SELECT 0 FROM (SELECT count(*) FROM gone) AS g`

// flagsSQL and expungeSQL write the tool's own email_messages. Both find a
// row by md5(message_id), as its unique index has it.
const flagsSQL = `UPDATE email_messages m
	SET is_read = x.r, is_starred = x.s, labels = ARRAY(SELECT jsonb_array_elements_text(x.l::jsonb))
	FROM unnest($3::bigint[], $4::bool[], $5::bool[], $6::text[]) AS x(uid, r, s, l)
	JOIN email_sync_uids u ON u.inbox = $1 AND u.folder = $7 AND u.uidvalidity = $2 AND u.uid = x.uid
	WHERE m.inbox = $1 AND md5(m.message_id) = md5(u.message_id) AND m.message_id = u.message_id
	AND (m.is_read, m.is_starred, m.labels) IS DISTINCT FROM
		(x.r, x.s, ARRAY(SELECT jsonb_array_elements_text(x.l::jsonb)))`

// expungeSQL sees email_sync_uids as it was before its own DELETE (one
// snapshot for the whole statement): the UIDs being forgotten are left out
// of "another settled UID stands for the row" by hand.
const expungeSQL = `WITH gone AS (
	DELETE FROM email_sync_uids WHERE inbox = $1 AND folder = $4 AND uidvalidity = $2 AND uid = ANY($3::bigint[])
	RETURNING message_id
), marked AS (
	UPDATE email_messages m SET deleted_at = now()
	FROM (SELECT DISTINCT message_id FROM gone WHERE message_id IS NOT NULL) AS g
	WHERE m.inbox = $1 AND md5(m.message_id) = md5(g.message_id) AND m.message_id = g.message_id
	AND m.deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM email_sync_uids o WHERE o.inbox = $1 AND o.message_id = g.message_id
		AND NOT (o.folder = $4 AND o.uidvalidity = $2 AND o.uid = ANY($3::bigint[])))
	RETURNING 1
)
SELECT count(*) FROM marked`

// genFollow writes flagsSQL and expungeSQL for an adopted email_messages,
// each only when the table has somewhere to put what it records: flags in
// the columns mapped to is_read, is_starred and labels (any of them), a
// deletion in a deleted_at column of a time type.
func genFollow(msgs *migrations.TableMap) (flags, expunge string) {
	row := probe(msgs, "u.message_id", "$1")
	var sets, lhs, rhs []string
	for field, expr := range map[string]string{
		"is_read":    "x.r",
		"is_starred": "x.s",
		"labels":     "ARRAY(SELECT jsonb_array_elements_text(x.l::jsonb))",
	} {
		t := msgs.Target(field)
		if t == nil || t.Fill != "" || t.Col.Generated {
			continue
		}
		col := ident(t.Col.Name)
		sets = append(sets, col+" = "+conv(expr, *t))
		lhs = append(lhs, "m."+col)
		rhs = append(rhs, conv(expr, *t))
	}
	slices.Sort(sets) // a stable statement for a stable map order
	if len(sets) > 0 {
		flags = `UPDATE email_messages m SET ` + strings.Join(sets, ", ") + `
	FROM unnest($3::bigint[], $4::bool[], $5::bool[], $6::text[]) AS x(uid, r, s, l)
	JOIN email_sync_uids u ON u.inbox = $1 AND u.folder = $7 AND u.uidvalidity = $2 AND u.uid = x.uid
	WHERE ` + row + `
	AND (` + strings.Join(lhs, ", ") + `, true) IS DISTINCT FROM (` + strings.Join(rhs, ", ") + `, true)`
	}
	if c := msgs.Table.Column("deleted_at"); c != nil && !c.Generated && strings.HasPrefix(c.Base, "timestamp") {
		expunge = `WITH gone AS (
	DELETE FROM email_sync_uids WHERE inbox = $1 AND folder = $4 AND uidvalidity = $2 AND uid = ANY($3::bigint[])
	RETURNING message_id AS id
), marked AS (
	UPDATE email_messages m SET deleted_at = now()
	FROM (SELECT DISTINCT id FROM gone WHERE id IS NOT NULL) AS g
	WHERE ` + probe(msgs, "g.id", "$1") + ` AND m.deleted_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM email_sync_uids o WHERE o.inbox = $1 AND o.message_id = g.id
		AND NOT (o.folder = $4 AND o.uidvalidity = $2 AND o.uid = ANY($3::bigint[])))
	RETURNING 1
)
SELECT count(*) FROM marked`
	}
	return flags, expunge
}
