package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/myhibachi/backfill/internal/testserver"
)

// databases creates and drops the per-run databases on one PostgreSQL
// server, so that every full run starts from an empty database.
type databases struct {
	base url.URL // a database on the server; dsn replaces its name
}

func newDatabases(dsn string) (databases, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return databases{}, fmt.Errorf("database URL: %w", err)
	}
	return databases{base: *u}, nil
}

// dsn returns the URL of database name on the server.
func (d databases) dsn(name string) string {
	u := d.base
	u.Path = "/" + name
	return u.String()
}

// create makes an empty database and returns its URL.
func (d databases) create(ctx context.Context, name string) (string, error) {
	if err := d.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return d.dsn(name), nil
}

// drop removes a database whose runs are over, so the disk does not fill up
// with copies of the corpus.
func (d databases) drop(ctx context.Context, name string) error {
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// settle writes what the last run left in shared buffers to the files
// (CHECKPOINT), so the next run does not pay for it.
func (d databases) settle(ctx context.Context) error {
	if err := d.exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// settings reports the server's version and durability settings, for the
// report: like is compared with like only if fsync is what we think.
func (d databases) settings(ctx context.Context) (version, fsync, syncCommit string, err error) {
	conn, err := d.connect(ctx)
	if err != nil {
		return "", "", "", err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit')`).Scan(&version, &fsync, &syncCommit)
	if err != nil {
		return "", "", "", fmt.Errorf("read server settings: %w", err)
	}
	return version, fsync, syncCommit, nil
}

func (d databases) exec(ctx context.Context, sql string) error {
	conn, err := d.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// connect opens a session on the maintenance database, where databases are
// created and dropped.
func (d databases) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.dsn("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return conn, nil
}

// durableServer is a PostgreSQL cluster with fsync on, started by
// scripts/pg.sh: pgtest's clusters trade durability for speed, and the
// durable comparison with mbsync `FSync yes` needs one that does not.
type durableServer struct {
	dir string
	dbs databases
}

// startDurable starts the cluster in dir, which must not exist yet.
func startDurable(ctx context.Context, dir string) (*durableServer, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	// pg.sh runs the server as user postgres, which must reach dir.
	if err := testserver.MakeSearchable(dir, "user postgres"); err != nil {
		return nil, err
	}
	port, err := testserver.FreePort()
	if err != nil {
		return nil, err
	}
	s := &durableServer{dir: dir}
	out, err := pgScript(ctx, "start", dir, strconv.Itoa(port))
	if err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("scripts/pg.sh start: %w", err)
	}
	if s.dbs, err = newDatabases(strings.TrimSpace(out)); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

func (s *durableServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pgScript(ctx, "stop", s.dir); err != nil {
		return fmt.Errorf("scripts/pg.sh stop: %w", err)
	}
	return nil
}

// pgScript runs scripts/pg.sh, from the repository root, and returns what it
// printed on stdout.
func pgScript(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join("scripts", "pg.sh"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
