// Package pgtest runs throwaway PostgreSQL clusters for tests: one cluster per
// test binary and one fresh database per test, so tests run in parallel
// against a real server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/testserver"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the environment variable that points the tests at an
// existing server instead of a cluster of their own. Its URL must allow
// CREATE DATABASE; its database is only used to create and drop others.
const EnvDatabaseURL = "BACKFILL_TEST_DATABASE_URL"

// shared is the server NewDatabase creates databases on. It is package state
// because NewDatabase gets nothing but a testing.TB; Main owns its lifetime.
var shared server

// server starts the test binary's cluster on first use and remembers the
// outcome, so a missing PostgreSQL fails every test that needs it the same way.
type server struct {
	inMain  atomic.Bool
	once    sync.Once
	admin   *url.URL // the maintenance database, where databases are created
	cluster *Cluster
	dir     string
	err     error
}

// Main runs the tests of a package that uses NewDatabase:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The cluster starts with the first NewDatabase call, so a run of tests that
// need none starts none, and is stopped and removed after the tests. Main
// returns the exit code of m.Run, or 1 if the tests passed but the cluster
// could not be stopped; the testing package exits with m.Run's code when
// TestMain returns, so `os.Exit(pgtest.Main(m))` is needed for the 1 to count.
func Main(m *testing.M) int {
	shared.inMain.Store(true)
	code := m.Run()
	if err := shared.close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// NewDatabase creates an empty database for the test, dropped when the test
// ends, and returns its URL. Tests that each take their own database can run
// in parallel. With BACKFILL_TEST_DATABASE_URL set, the database is made on
// that server; otherwise on the test binary's own cluster (see Main).
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin, err := shared.start()
	if err != nil {
		tb.Fatal(err)
	}
	name := databaseName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := execAdmin(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		// The test's context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := execAdmin(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *admin
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// NewCluster starts a cluster of the test's own, stopped and removed when the
// test ends. It is for tests that stop or restart the server, which must not
// disturb the shared cluster other tests use.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	dir, err := newClusterDir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("pgtest: %v\n%s", err, testserver.Tail(c.LogFile(), 2000))
		}
		os.RemoveAll(dir)
	})
	return c
}

func (s *server) start() (*url.URL, error) {
	s.once.Do(func() {
		if env := os.Getenv(EnvDatabaseURL); env != "" {
			if s.admin, s.err = url.Parse(env); s.err != nil {
				s.err = fmt.Errorf("pgtest: %s: %w", EnvDatabaseURL, s.err)
			}
			return
		}
		if !s.inMain.Load() {
			s.err = errors.New("pgtest: NewDatabase needs the test binary's cluster: " +
				"add `func TestMain(m *testing.M) { pgtest.Main(m) }` to the package's tests")
			return
		}
		reapOrphans()
		if s.dir, s.err = newClusterDir(); s.err != nil {
			s.err = fmt.Errorf("pgtest: %w", s.err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if s.cluster, s.err = Start(ctx, s.dir); s.err != nil {
			os.RemoveAll(s.dir)
			return
		}
		s.admin, s.err = url.Parse(s.cluster.DSN("postgres"))
	})
	return s.admin, s.err
}

func (s *server) close() error {
	if s.cluster == nil {
		return nil
	}
	err := s.cluster.Stop()
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, testserver.Tail(s.cluster.LogFile(), 2000))
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rmErr)
	}
	return err
}

func execAdmin(ctx context.Context, admin *url.URL, sql string) error {
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// databaseName makes a unique database name that says which test owns it.
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("test_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 45 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var random [4]byte
	_, _ = rand.Read(random[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(random[:]))
	return b.String()
}

// Cluster directories made by this package are named clusterDirPattern and
// hold the id of the test process in ownerFile. A test binary killed by a
// timeout runs no cleanup; reapOrphans stops and removes what it left.
const (
	clusterDirPattern = "backfill-pgtest-"
	ownerFile         = "owner.pid"
)

func newClusterDir() (string, error) {
	dir, err := os.MkdirTemp("", clusterDirPattern)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// reapOrphans stops the clusters of test processes that have died and
// removes their directories. Directories without an owner are left alone:
// they may be in the middle of being made.
func reapOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterDirPattern+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		c := &Cluster{dir: dir}
		if c.binDir, err = findBinDir(); err != nil {
			return
		}
		if os.Geteuid() == 0 {
			if c.runAs, err = user.Lookup("postgres"); err != nil {
				return
			}
		}
		if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = c.run(ctx, "pg_ctl", "stop", "-w", "-D", c.dataDir(), "-m", "immediate")
			cancel()
		}
		_ = os.RemoveAll(dir)
	}
}
