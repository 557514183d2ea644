package fleet_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/myhibachi/backfill/fleet"
	"github.com/myhibachi/backfill/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestMigrateConcurrently runs River's migrations from four processes'
// worth of pools at once on a fresh database, as a fleet's deploys do:
// River takes no lock, and without ours three of the four fail.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([][]fleet.Migration, 4)
	errs := make([]error, 4)
	for i := range 4 {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		wg.Go(func() { applied[i], errs[i] = fleet.Migrate(ctx, pool, false) })
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
		total += len(applied[i])
	}
	if total == 0 || len(applied[0])*len(applied[1])*len(applied[2])*len(applied[3]) != 0 {
		t.Fatalf("versions applied per migrate: %d %d %d %d: want them applied once, by one", len(applied[0]), len(applied[1]), len(applied[2]), len(applied[3]))
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if ok, err := fleet.Ready(ctx, pool); err != nil || !ok {
		t.Fatalf("river_job missing after migrate: %v", err)
	}
	again, err := fleet.Migrate(ctx, pool, false)
	if err != nil || len(again) != 0 {
		t.Fatalf("a second migrate applied %v (%v), want nothing", again, err)
	}
}
