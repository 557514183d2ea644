package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/myhibachi/backfill/internal/testserver"
)

// ErrNoBinaries is returned (wrapped) by Start when initdb and pg_ctl cannot be
// found.
var ErrNoBinaries = errors.New("no PostgreSQL binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin: " +
	"install Debian's postgresql package (apt-get install -y postgresql, or scripts/deps.sh)")

// Cluster is a PostgreSQL cluster started by Start. It listens on 127.0.0.1
// only, trusts every connection, and trades durability for speed (fsync=off).
type Cluster struct {
	dir     string // given to Start; holds data/, the server log and the socket
	binDir  string
	runAs   *user.User // the user that runs the server when we are root, else nil
	sockDir string
	ownSock bool // sockDir was created outside dir and is removed by Stop
	port    int

	mu      sync.Mutex
	running bool
}

// Start creates a cluster in dir (created if needed; it must not already hold
// one) and starts it on a free loopback port. The caller stops it with Stop
// and removes dir afterwards.
//
// PostgreSQL refuses to run as root: when the caller is root, initdb and the
// server run as the postgres user, which is given dir. Parents of dir below
// the temporary directory are made searchable for it.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, binDir: binDir}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root, so the server must run as user postgres: %w", err)
		}
	}
	if err := c.prepareDirs(); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := c.run(ctx, "initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w", err)
	}

	_, err = testserver.OnFreePort(ctx, func(port int) error {
		c.port = port
		return c.start(ctx)
	})
	if err != nil {
		c.removeSock()
		return nil, fmt.Errorf("pgtest: start: %w", err)
	}
	return c, nil
}

// DSN returns the URL of database dbname on the cluster, as user postgres.
func (c *Cluster) DSN(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the cluster listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// LogFile returns the path of the server log, worth reading when a test fails.
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, "postgres.log") }

// Stop shuts the server down (fast mode: sessions are disconnected, no crash
// recovery on the next start). Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.stop(ctx)
	c.removeSock()
	return err
}

// Restart stops the server if it runs and starts it again on the same port,
// keeping its data. Sessions are cut, as when a production server restarts
// under a running client.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(c.sockDir); err != nil {
		// Stop removed the socket directory made outside dir.
		if err := c.makeSockDir(); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("pgtest: restart: %w", err)
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// start runs pg_ctl start; the caller holds mu or owns c exclusively.
func (c *Cluster) start(ctx context.Context) error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k '%s' -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c max_connections=200", c.port, c.sockDir)
	if err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir(), "-l", c.LogFile(), "-o", opts); err != nil {
		// A server that came up after pg_ctl gave up must not outlive us.
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.run(stopCtx, "pg_ctl", "stop", "-w", "-D", c.dataDir(), "-m", "immediate")
		return fmt.Errorf("%w\n%s", err, testserver.Tail(c.LogFile(), 2000))
	}
	c.running = true
	return nil
}

// stop runs pg_ctl stop; the caller holds mu.
func (c *Cluster) stop(ctx context.Context) error {
	if !c.running {
		return nil
	}
	if err := c.run(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-D", c.dataDir(), "-m", "fast"); err != nil {
		return fmt.Errorf("pgtest: stop: %w", err)
	}
	c.running = false
	return nil
}

// prepareDirs creates dir and the socket directory and, as root, hands them
// to the server's user.
func (c *Cluster) prepareDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	if c.runAs != nil {
		if err := testserver.MakeSearchable(c.dir, "user "+c.runAs.Username); err != nil {
			return err
		}
		if err := c.chown(c.dir); err != nil {
			return err
		}
	}
	return c.makeSockDir()
}

// makeSockDir makes the directory of the server's Unix socket. A socket path
// is limited to about 100 bytes, and test directories can be longer: then
// the socket goes to a short directory of its own.
func (c *Cluster) makeSockDir() error {
	c.sockDir, c.ownSock = filepath.Join(c.dir, "sock"), false
	if len(c.sockDir) > 80 {
		dir, err := os.MkdirTemp("", "pgsock")
		if err != nil {
			return err
		}
		c.sockDir, c.ownSock = dir, true
	} else if err := os.Mkdir(c.sockDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if strings.ContainsRune(c.sockDir, '\'') {
		return fmt.Errorf("socket directory %q contains a quote", c.sockDir)
	}
	if c.runAs != nil {
		return c.chown(c.sockDir)
	}
	return nil
}

func (c *Cluster) removeSock() {
	if c.ownSock {
		_ = os.RemoveAll(c.sockDir)
	}
}

func (c *Cluster) chown(path string) error {
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return os.Chown(path, uid, gid)
}

// run runs one of the PostgreSQL programs, as the server's user when we are
// root. Its output goes to a file, never to a pipe: pg_ctl leaves a server
// running that would keep a pipe open, and waiting on it would never end.
func (c *Cluster) run(ctx context.Context, program string, args ...string) error {
	out, err := os.CreateTemp("", "pgtest-out")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()

	path := filepath.Join(c.binDir, program)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir // the server's user may not be allowed into our working directory
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s: %w: %s", program, err, bytes.TrimSpace(msg))
	}
	return nil
}

// findBinDir returns the directory holding initdb and pg_ctl: the one in PATH,
// else the newest of Debian's /usr/lib/postgresql/<version>/bin.
func findBinDir() (string, error) { return findBinDirIn("/usr/lib/postgresql/*/bin") }

// findBinDirIn is findBinDir with the pattern of versioned directories given.
func findBinDirIn(pattern string) (string, error) {
	if ctl, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(ctl); err == nil {
			ctl = real // a link in /usr/local/bin to /usr/lib/postgresql/15/bin/pg_ctl
		}
		dir := filepath.Dir(ctl)
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(pattern)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "pg_ctl")) && isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("pgtest: %w", ErrNoBinaries)
}

// version extracts the major version from /usr/lib/postgresql/<version>/bin.
func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
