// Package dovecottest runs a private Dovecot 2.3 IMAP server for end-to-end
// tests and benchmarks: its own configuration, users and Maildirs in a test
// directory, and plaintext IMAP on a free port of 127.0.0.1.
package dovecottest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/procgroup"
	"github.com/myhibachi/backfill/internal/testserver"
)

// installHint ends every error that says Dovecot is missing.
const installHint = "install Debian's dovecot-imapd package (apt-get install -y dovecot-imapd, or scripts/deps.sh)"

// User is a mail account on the server. Its mail is in its own Maildir.
type User struct {
	Name     string // the login, often user@domain
	Password string
}

// Option changes the server's configuration.
type Option func(*settings)

type settings struct {
	folders              []Folder
	maxUserIPConnections int
	extra                string
	introspectionURL     string
	certPEM, keyPEM      []byte
}

// WithOAuth2 adds an oauth2 passdb for the OAUTHBEARER and XOAUTH2
// mechanisms: Dovecot POSTs each token (token=...) to introspectionURL, an
// RFC 7662 endpoint the test runs, and accepts it when the JSON answer has
// "active": "true" (or true) and "username" equal to the login. Passwords
// keep working.
func WithOAuth2(introspectionURL string) Option {
	return func(s *settings) { s.introspectionURL = introspectionURL }
}

// WithTLS turns TLS on with the given PEM certificate and key: the imap
// listener offers STARTTLS and an imaps listener takes implicit TLS (see
// TLSAddr). Plaintext login stays allowed, so a test may still log in
// without TLS.
func WithTLS(certPEM, keyPEM []byte) Option {
	return func(s *settings) { s.certPEM, s.keyPEM = certPEM, keyPEM }
}

// WithMaxUserIPConnections sets how many IMAP sessions one user may hold from
// one address (mail_max_userip_connections; 20 unless set). Providers cap
// this; a low value lets a test see the refusal.
func WithMaxUserIPConnections(n int) Option {
	return func(s *settings) { s.maxUserIPConnections = n }
}

// Folder is a mailbox besides INBOX, for WithFolders.
type Folder struct {
	// Name is as users see it, in UTF-8, levels separated by /
	// ("Projekte/Über"). On disk it is a Maildir++ folder, its name in
	// modified UTF-7, as Dovecot keeps it by default.
	Name string
	// SpecialUse is its RFC 6154 use, `\Sent`, `\Trash`, `\All`, ...; ""
	// for none.
	SpecialUse string
}

// WithFolders makes / the hierarchy separator and creates folders for
// every user at login (mailbox blocks with auto = create in the inbox
// namespace), with their special uses, which Dovecot shows in LIST.
// LoadFolder puts mail in them.
func WithFolders(folders ...Folder) Option {
	return func(s *settings) { s.folders = append(s.folders, folders...) }
}

// WithConfig appends lines to the generated dovecot.conf, where later settings
// override earlier ones.
func WithConfig(lines string) Option {
	return func(s *settings) { s.extra += lines + "\n" }
}

// Server is a running Dovecot started by Start.
type Server struct {
	dir     string
	conf    string
	baseDir string
	ownBase bool // baseDir is outside dir and removed by Stop
	set     settings
	port    int
	addr    string
	tlsPort int               // the imaps listener's, with WithTLS; 0 otherwise
	homes   map[string]string // user name → home directory
	mailUID int
	mailGID int
	seq     atomic.Int64 // makes Maildir file names unique and ordered

	pid     int           // the master process, leader of its process group
	exited  chan struct{} // closed once the master has exited and been reaped
	waitErr error         // the master's exit status, read after exited is closed

	mu      sync.Mutex
	stopped bool
}

// Available reports whether Dovecot 2.3 can be run here: its programs, and the
// system users it drops privileges to. Tests fail with its error, which says
// what to install.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("dovecottest: Dovecot's privilege separation needs root; run the tests as root (as CI does)")
	}
	dovecot, err := program("dovecot")
	if err != nil {
		return err
	}
	if _, err := program("doveadm"); err != nil {
		return err
	}
	out, err := exec.Command(dovecot, "--version").Output()
	if err != nil {
		return fmt.Errorf("dovecottest: %s --version: %w", dovecot, err)
	}
	if v := strings.TrimSpace(string(out)); !strings.HasPrefix(v, "2.3.") {
		return fmt.Errorf("dovecottest: Dovecot %s found, but the generated configuration is for 2.3", v)
	}
	for _, name := range []string{"dovenull", "dovecot", "mail"} {
		if _, err := user.Lookup(name); err != nil {
			return fmt.Errorf("dovecottest: system user %s: %w; %s", name, err, installHint)
		}
	}
	return nil
}

// Start writes a configuration for users into dir (created if needed) and
// starts Dovecot on a free port of 127.0.0.1. The caller stops it with Stop.
//
// Mail is owned by the system user mail, which must reach dir: parents of dir
// below the temporary directory are made searchable (t.TempDir makes them
// 0700).
func Start(ctx context.Context, dir string, users []User, opts ...Option) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	set := settings{maxUserIPConnections: 20}
	for _, opt := range opts {
		opt(&set)
	}
	s, err := prepare(dir, users)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	s.set = set

	_, err = testserver.OnFreePort(ctx, func(port int) error {
		s.port = port
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if set.certPEM != nil {
			tlsPort, err := testserver.FreePort()
			if err != nil {
				return err
			}
			s.tlsPort = tlsPort
		}
		if err := s.writeConfig(); err != nil {
			return err
		}
		err := s.launch(ctx)
		if err != nil && (strings.Contains(err.Error(), "Address already in use") ||
			s.tlsPort != 0 && !testserver.PortFree(s.tlsPort)) {
			// A port was taken between the probe and Dovecot's bind,
			// perhaps only for a moment (another test's probe): the
			// imaps one, which OnFreePort does not watch, or the other.
			return fmt.Errorf("%w: %w", testserver.ErrPortTaken, err)
		}
		return err
	})
	if err != nil {
		s.removeBase()
		return nil, fmt.Errorf("dovecottest: start: %w", err)
	}
	return s, nil
}

// NewServer starts a server for the test in a temporary directory and stops
// it when the test ends. It skips the test in -short mode, as end-to-end tests
// are the slow ones, and fails it when Dovecot is not installed.
func NewServer(tb testing.TB, users []User, opts ...Option) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("dovecottest: end-to-end test against Dovecot skipped in -short mode")
	}
	if err := Available(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, tb.TempDir(), users, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("end of %s:\n%s", s.LogFile(), testserver.Tail(s.LogFile(), 4000))
		}
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Addr returns the host:port of the plaintext IMAP listener.
func (s *Server) Addr() string { return s.addr }

// TLSAddr returns the host:port of the imaps listener (implicit TLS), or ""
// without WithTLS.
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// URL returns the imap:// URL of a user's mailbox on this server, with an @ in
// the user name percent-encoded: imap://user%40example.com@127.0.0.1:port/INBOX.
func (s *Server) URL(user, mailbox string) string {
	u := url.URL{Scheme: "imap", User: url.User(user), Host: s.addr, Path: "/" + mailbox}
	return u.String()
}

// LogFile returns the path of Dovecot's log, worth reading when a test fails.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "dovecot.log") }

// Stop shuts Dovecot down and waits until all its processes have exited.
// Open sessions are cut. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stop()
	s.removeBase()
	return err
}

// Restart stops the server if it runs and starts it again on the same port,
// with the same users and mail. Sessions are cut, as when a provider restarts
// its servers under a running client.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stop(); err != nil {
		return err
	}
	if _, err := os.Stat(s.baseDir); err != nil && s.ownBase {
		// Stop removed the base_dir made outside dir.
		if s.baseDir, err = shortBaseDir(); err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
	}
	if err := s.writeConfig(); err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	if err := s.launch(ctx); err != nil {
		return fmt.Errorf("dovecottest: restart: %w", err)
	}
	s.stopped = false
	return nil
}

// stop is Stop without removing base_dir; the caller holds mu.
func (s *Server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true

	var errs []error
	select {
	case <-s.exited:
		errs = append(errs, fmt.Errorf("dovecottest: Dovecot had already exited: %v\n%s", s.waitErr, testserver.Tail(s.LogFile(), 2000)))
	default:
		// SIGTERM to the whole process group, not `doveadm stop`: that
		// signals the master alone, which then waits a fixed second for its
		// log process, and leaves the processes serving clients running.
		_ = syscall.Kill(-s.pid, syscall.SIGTERM)
		select {
		case <-s.exited:
			if s.waitErr != nil && !killedBy(s.waitErr, syscall.SIGTERM) {
				errs = append(errs, fmt.Errorf("dovecottest: Dovecot exited: %w", s.waitErr))
			}
		case <-time.After(15 * time.Second):
			errs = append(errs, errors.New("dovecottest: Dovecot did not stop within 15s; killed"))
			_ = syscall.Kill(-s.pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	if err := procgroup.WaitGone(s.pid, 5*time.Second, "Dovecot"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// prepare creates dir, the users' homes and the password file.
func prepare(dir string, users []User) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, conf: filepath.Join(dir, "dovecot.conf"), homes: make(map[string]string)}
	mail, err := user.Lookup("mail")
	if err != nil {
		return nil, err
	}
	s.mailUID, _ = strconv.Atoi(mail.Uid)
	s.mailGID, _ = strconv.Atoi(mail.Gid)

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := testserver.MakeSearchable(dir, "users mail and dovenull"); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		return nil, err
	}
	var passwd strings.Builder
	for _, u := range users {
		if err := validUser(u); err != nil {
			return nil, err
		}
		if _, dup := s.homes[u.Name]; dup {
			return nil, fmt.Errorf("user %q given twice", u.Name)
		}
		home := filepath.Join(dir, "home", u.Name)
		if err := os.Mkdir(home, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if err := os.Chown(home, s.mailUID, s.mailGID); err != nil {
			return nil, err
		}
		s.homes[u.Name] = home
		// user:password:uid:gid:gecos:home:shell:extra; uid and gid come
		// from mail_uid and mail_gid.
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s::::%s::\n", u.Name, u.Password, home)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd.String()), 0o644); err != nil {
		return nil, err
	}

	// Dovecot's Unix sockets live in base_dir, and a socket path is limited
	// to about 100 bytes: a long dir gets a short base_dir of its own.
	s.baseDir = filepath.Join(dir, "run")
	if len(s.baseDir) > 60 {
		if s.baseDir, err = shortBaseDir(); err != nil {
			return nil, err
		}
		s.ownBase = true
	}
	return s, nil
}

func shortBaseDir() (string, error) {
	dir, err := os.MkdirTemp("", "dovecot")
	if err != nil {
		return "", err
	}
	// Dovecot's unprivileged processes reach their sockets through it.
	return dir, os.Chmod(dir, 0o755)
}

func validUser(u User) error {
	if u.Name == "" || u.Name == "." || u.Name == ".." || strings.ContainsAny(u.Name, ":/\n\t \x00") {
		return fmt.Errorf("user name %q: must be non-empty, without ':', '/' or white space", u.Name)
	}
	if strings.ContainsAny(u.Password, ":\n\x00") {
		return fmt.Errorf("password of %q: must be without ':' or a newline", u.Name)
	}
	return nil
}

// launch starts the master in the foreground, as our child, and waits until
// it accepts connections.
//
// The master is started from a goroutine locked to its OS thread, with a
// parent-death signal: if the test process dies without cleaning up (a test
// timeout panics), the kernel sends the master SIGTERM and Dovecot shuts
// down instead of lingering. The signal follows the thread that started the
// child, so that thread stays alive, locked, until the master has exited.
func (s *Server) launch(ctx context.Context) error {
	dovecot, err := program("dovecot")
	if err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(s.dir, "dovecot.out"))
	if err != nil {
		return err
	}
	defer out.Close()

	started := make(chan error, 1)
	s.exited = make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		// Output goes to a file, not a pipe that Dovecot's children would
		// hold open.
		cmd := exec.Command(dovecot, "-F", "-c", s.conf)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		s.pid = cmd.Process.Pid
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return err
	}

	// The master binds its listeners one after the other, and the kernel
	// accepts on each as soon as it is bound: every one must accept, or a
	// test dialling the imaps port right after Start can be refused.
	addrs := []string{s.addr}
	if s.tlsPort != 0 {
		addrs = append(addrs, s.TLSAddr())
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		for len(addrs) > 0 {
			conn, err := net.DialTimeout("tcp", addrs[0], time.Second)
			if err != nil {
				break
			}
			conn.Close()
			addrs = addrs[1:]
		}
		if len(addrs) == 0 {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("dovecot exited: %v\n%s\n%s", s.waitErr, testserver.Tail(out.Name(), 2000), testserver.Tail(s.LogFile(), 2000))
		case <-ctx.Done():
			_ = syscall.Kill(-s.pid, syscall.SIGKILL)
			<-s.exited
			return fmt.Errorf("dovecot did not accept connections on %s: %w\n%s", addrs[0], ctx.Err(), testserver.Tail(s.LogFile(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killedBy reports whether a process's exit error says sig ended it.
func killedBy(err error, sig syscall.Signal) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	status, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && status.Signaled() && status.Signal() == sig
}

func (s *Server) removeBase() {
	if s.ownBase {
		_ = os.RemoveAll(s.baseDir)
	}
}

// doveadm runs a doveadm command against this server and returns its output.
func (s *Server) doveadm(ctx context.Context, args ...string) (string, error) {
	path, err := program("doveadm")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"-c", s.conf}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// program finds one of Dovecot's programs, which Debian puts in /usr/sbin,
// outside the PATH of non-root users.
func program(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("dovecottest: %s not found; %s", name, installHint)
}
