package fleet

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrateLock serialises River's migrations between processes: River takes
// no lock of its own, and two `backfill migrate` run at once on a fresh
// database fail on each other's CREATE TYPE.
const migrateLock int64 = 0x62666c_72697672 // "bfl" "rivr"

// Migration is one of River's schema versions.
type Migration struct {
	Version int
	Name    string
}

// Migrate brings River's tables (river_job, river_leader, river_queue,
// river_migration, river_notification) up to date in the pool's schema,
// as backfill's own tables are: applying only what is missing, so it is
// safe to run any time. With dryRun it reports what it would apply.
func Migrate(ctx context.Context, pool *pgxpool.Pool, dryRun bool) ([]Migration, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return nil, fmt.Errorf("river migrations: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock) //nolint:errcheck // the session ends the lock anyway

	m, err := rivermigrate.New[pgx.Tx](riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{DryRun: dryRun})
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	var applied []Migration
	for _, v := range res.Versions {
		applied = append(applied, Migration{Version: v.Version, Name: v.Name})
	}
	return applied, nil
}

// Ready reports whether River's tables exist: a worker or enqueue on a
// database `backfill migrate` has not seen says so instead of failing on
// a missing relation.
func Ready(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('river_job') IS NOT NULL AND to_regclass('river_migration') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look for river_job: %w", err)
	}
	return ok, nil
}
