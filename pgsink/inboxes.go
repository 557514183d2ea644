package pgsink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/migrations"
)

// Inbox is an inbox registered in the database (backfill_inboxes). It says
// how to get a credential where backfill runs, never holds one.
type Inbox struct {
	Name            string    `json:"name"`
	URL             string    `json:"url"`
	PasswordCommand string    `json:"password_command,omitempty"`
	PasswordEnv     string    `json:"password_env,omitempty"`
	TokenCommand    string    `json:"token_command,omitempty"`
	Folders         []string  `json:"folders"` // nil: the URL's mailbox, INBOX
	AllFolders      bool      `json:"all_folders"`
	MaxDownload     string    `json:"max_download,omitempty"` // as --max-download takes it; "": not set
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Change is what UpsertInbox did.
type Change int

const (
	Unchanged Change = iota
	Added
	Updated
)

func (c Change) String() string {
	switch c {
	case Added:
		return "added"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// Querier is what the registry functions need: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UpsertInbox registers in, or makes the registered inbox of its name
// exactly in (fields left empty are cleared), in one statement, so that
// concurrent registrations of one name leave one row.
func UpsertInbox(ctx context.Context, db Querier, in Inbox) (Change, error) {
	var inserted bool
	err := db.QueryRow(ctx, `INSERT INTO backfill_inboxes AS i
		(name, url, password_command, password_env, token_command, folders, all_folders, max_download)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, password_command = EXCLUDED.password_command,
			password_env = EXCLUDED.password_env, token_command = EXCLUDED.token_command, folders = EXCLUDED.folders,
			all_folders = EXCLUDED.all_folders, max_download = EXCLUDED.max_download, updated_at = now()
		WHERE (i.url, i.password_command, i.password_env, i.token_command, i.folders, i.all_folders, i.max_download)
			IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.password_command, EXCLUDED.password_env, EXCLUDED.token_command,
			EXCLUDED.folders, EXCLUDED.all_folders, EXCLUDED.max_download)
		RETURNING xmax = 0`,
		in.Name, in.URL, nullable(in.PasswordCommand), nullable(in.PasswordEnv), nullable(in.TokenCommand),
		in.Folders, in.AllFolders, nullable(in.MaxDownload)).Scan(&inserted)
	switch {
	case errors.Is(err, pgx.ErrNoRows): // the row is as asked already
		return Unchanged, nil
	case err != nil:
		return 0, registryError("register inbox "+in.Name, err)
	case inserted:
		return Added, nil
	}
	return Updated, nil
}

// RemoveInbox deletes the inbox's registration (its mail rows stay) and
// reports whether there was one.
func RemoveInbox(ctx context.Context, db Querier, name string) (bool, error) {
	tag, err := db.Exec(ctx, `DELETE FROM backfill_inboxes WHERE name = $1`, name)
	if err != nil {
		return false, registryError("remove inbox "+name, err)
	}
	return tag.RowsAffected() > 0, nil
}

const inboxColumns = `name, url, coalesce(password_command, ''), coalesce(password_env, ''), coalesce(token_command, ''),
	folders, all_folders, coalesce(max_download, ''), created_at, updated_at`

// ListInboxes returns the registered inboxes by name. A database migrated
// before the registry existed has none: nil, not an error, so that setups
// configured in the environment alone keep working.
func ListInboxes(ctx context.Context, db Querier) ([]Inbox, error) {
	rows, err := db.Query(ctx, `SELECT `+inboxColumns+` FROM backfill_inboxes ORDER BY name`)
	if err != nil {
		if undefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list registered inboxes: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanInbox)
	if err != nil {
		if undefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list registered inboxes: %w", err)
	}
	return list, nil
}

// GetInbox returns the registered inbox of that name and whether there is
// one; a database without the registry has none (see ListInboxes).
func GetInbox(ctx context.Context, db Querier, name string) (Inbox, bool, error) {
	rows, err := db.Query(ctx, `SELECT `+inboxColumns+` FROM backfill_inboxes WHERE name = $1`, name)
	if err == nil {
		var in Inbox
		in, err = pgx.CollectExactlyOneRow(rows, scanInbox)
		if err == nil {
			return in, true, nil
		}
	}
	if errors.Is(err, pgx.ErrNoRows) || undefinedTable(err) {
		return Inbox{}, false, nil
	}
	return Inbox{}, false, fmt.Errorf("look up inbox %s in backfill_inboxes: %w", name, err)
}

func scanInbox(row pgx.CollectableRow) (Inbox, error) {
	var in Inbox
	err := row.Scan(&in.Name, &in.URL, &in.PasswordCommand, &in.PasswordEnv, &in.TokenCommand,
		&in.Folders, &in.AllFolders, &in.MaxDownload, &in.CreatedAt, &in.UpdatedAt)
	return in, err
}

func undefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// registryError says to migrate when the registry is missing, a critical
// error as a missing schema is everywhere else.
func registryError(what string, err error) error {
	if undefinedTable(err) {
		return &errlog.CriticalError{Type: "schema_missing",
			Err: fmt.Errorf("%s: %w (no backfill_inboxes table)", what, migrations.ErrNotMigrated)}
	}
	return fmt.Errorf("%s: %w", what, err)
}
