// Package debtree runs a server from Debian packages that were unpacked, not
// installed (by scripts/servers.sh), in a private mount namespace where the
// unpacked tree is laid over /usr and /etc: the programs find their libraries,
// modules and built-in paths as if installed, while the machine's own packages
// (Dovecot, which conflicts with Cyrus and Courier) stay as they are.
//
// internal/cyrustest and internal/couriertest are built on it.
package debtree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/procgroup"
	"github.com/myhibachi/backfill/internal/testserver"
)

// ErrCannotRun wraps the reasons this machine cannot run a private server at
// all (not root, no mount namespaces): tests skip on it. Every other error
// is a failure.
var ErrCannotRun = errors.New("this machine cannot run private IMAP servers")

// Dir is where scripts/servers.sh unpacks the servers:
// $BACKFILL_SERVERS_DIR, else /var/cache/backfill-servers.
func Dir() string {
	if d := os.Getenv("BACKFILL_SERVERS_DIR"); d != "" {
		return d
	}
	return "/var/cache/backfill-servers"
}

// Tree is one server's unpacked packages.
type Tree struct {
	Name string // cyrus or courier, as scripts/servers.sh names them
	Root string // holds usr/ and etc/ as the packages ship them
}

var (
	canRunOnce sync.Once
	canRunErr  error
)

// CanRun reports, wrapping ErrCannotRun, why this machine cannot run a
// private server: the servers drop privileges to their own users, and the
// mounts need root in a new mount namespace with overlayfs.
func CanRun() error {
	canRunOnce.Do(func() {
		if os.Geteuid() != 0 {
			canRunErr = fmt.Errorf("%w: needs root (the servers switch to their own users); CI runs as root", ErrCannotRun)
			return
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			canRunErr = fmt.Errorf("%w: no unshare program (util-linux)", ErrCannotRun)
			return
		}
		// A throwaway overlay in a throwaway namespace: what Start does.
		dir, err := os.MkdirTemp("", "debtree-probe")
		if err != nil {
			canRunErr = err
			return
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mkdir -p "$1/lower" "$1/mnt" && mount -t overlay overlay -o "lowerdir=$1/lower:/etc" "$1/mnt"`, "probe", dir).CombinedOutput()
		if err != nil {
			canRunErr = fmt.Errorf("%w: a private mount namespace with overlayfs is refused here (%v: %s)", ErrCannotRun, err, bytes.TrimSpace(out))
		}
	})
	return canRunErr
}

// Find returns the unpacked tree of a server, or an error that says to run
// scripts/servers.sh.
func Find(name string) (Tree, error) {
	t := Tree{Name: name, Root: filepath.Join(Dir(), name, "root")}
	if _, err := os.Stat(filepath.Join(Dir(), name, "packages.txt")); err != nil {
		return t, fmt.Errorf("debtree: %s is not unpacked in %s: run scripts/servers.sh %s (make test does)", name, filepath.Dir(t.Root), name)
	}
	return t, nil
}

// Proc is a server running in its own mount namespace and process group.
type Proc struct {
	pid  int
	ns   string         // the mount namespace, as /proc/PID/ns/mnt reads
	hold io.WriteCloser // closing it makes the namespace's watcher end the group
	// pin keeps the namespace, and so its identity, alive until Stop has
	// looked for its last processes: the kernel gives a freed namespace's
	// number to the next one made, another test's server perhaps.
	pin     *os.File
	exited  chan struct{}
	waitErr error

	mu      sync.Mutex
	stopped bool
}

// Launch runs script with sh in a new mount namespace where tree's usr is
// laid over /usr, etcDir's files and then tree's etc over /etc, and an empty
// tmpfs is mounted on /run. Its output goes to logFile. script should end by
// exec'ing the server in the foreground. Launch returns once a process of
// the namespace listens on addr's port.
//
// The whole process group ends when Stop is called or when the test process
// dies: a watcher in the group waits for the end of a pipe that only this
// process holds.
func Launch(ctx context.Context, tree Tree, etcDir, logFile, addr, script string) (*Proc, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer out.Close()

	full := strings.Join([]string{
		"set -e",
		`mount -t overlay overlay -o "lowerdir=$1/usr:/usr" /usr`,
		`mount -t overlay overlay -o "lowerdir=$2:$1/etc:/etc" /etc`,
		`mount -t tmpfs -o mode=755 tmpfs /run`,
		// When our pipe closes, ends every process of the namespace, the
		// daemons that left the process group included (Courier's gam_server).
		// An asynchronous list's stdin is /dev/null unless redirected: hence
		// fd 3.
		`exec 3<&0`,
		`(trap '' TERM; read -r _ <&3 || true; kill -TERM 0; ns=$(readlink /proc/self/ns/mnt)
for p in /proc/[0-9]*; do [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -TERM "${p#/proc/}" 2>/dev/null; done) &`,
		`exec 3<&- </dev/null`,
		script,
	}, "\n")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", full, "debtree", tree.Root, etcDir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	hold, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("debtree: start %s: %w", tree.Name, err)
	}
	p := &Proc{pid: cmd.Process.Pid, hold: hold, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	for {
		// Ready once one of our processes listens on the port: another
		// test's server may have taken it since it was found free, and
		// would answer a dial just as well.
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.pid)); err == nil && ns != own {
			if listens(port, NamespaceProcesses(ns)) {
				if p.pin, err = PinNamespace(p.pid, ns); err != nil {
					_ = p.Stop()
					return nil, err
				}
				p.ns = ns
				return p, nil
			}
		}
		select {
		case <-p.exited:
			_ = p.Stop()
			return nil, fmt.Errorf("debtree: %s exited before it listened on %s: %v\n%s", tree.Name, addr, p.waitErr, testserver.Tail(logFile, 3000))
		case <-ctx.Done():
			_ = p.Stop()
			return nil, fmt.Errorf("debtree: %s did not accept connections on %s: %w\n%s", tree.Name, addr, ctx.Err(), testserver.Tail(logFile, 3000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// listens reports whether one of pids holds a socket listening on TCP port
// of the loopback or any address, IPv4 or IPv6, as /proc/net shows them.
func listens(port int, pids []int) bool {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 32); ok && err == nil && int(n) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false
	}
	for _, pid := range pids {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && inodes[l] {
				return true
			}
		}
	}
	return false
}

// Pid returns the process group's leader, the server's main process.
func (p *Proc) Pid() int { return p.pid }

// Stop ends every process of the group and waits until they are gone.
// Stopping a stopped Proc does nothing.
func (p *Proc) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	defer p.hold.Close()
	if p.pin != nil {
		defer p.pin.Close()
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	var errs []error
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		errs = append(errs, errors.New("debtree: server did not stop within 15s; killed"))
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
	// The server has exited; what is left of the group is the watcher,
	// which ignores SIGTERM, and children still winding down.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if err := procgroup.WaitGone(p.pid, 5*time.Second, "the server"); err != nil {
		errs = append(errs, err)
	}
	// Daemons that left the group: gone with the namespace's mounts.
	for _, pid := range p.NamespaceProcesses() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(p.NamespaceProcesses()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("debtree: processes %v of the namespace outlived SIGKILL", p.NamespaceProcesses()))
			break
		}
	}
	return errors.Join(errs...)
}

// Namespace names the server's mount namespace, as /proc/PID/ns/mnt reads.
func (p *Proc) Namespace() string { return p.ns }

// NamespaceProcesses returns the processes in the server's mount namespace,
// the group's and those that left it.
func (p *Proc) NamespaceProcesses() []int { return NamespaceProcesses(p.ns) }

// PinNamespace opens the mount namespace of process pid, which must be ns,
// so that it outlives its processes until the file is closed: only while a
// namespace lives is its name (ns) its own, as the kernel reuses the number
// of a freed one for the next namespace made.
func PinNamespace(pid int, ns string) (*os.File, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return nil, fmt.Errorf("debtree: pin the mount namespace: %w", err)
	}
	// The process may have ended, and its number been taken, in between.
	if got, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); err != nil || got != ns {
		f.Close()
		return nil, fmt.Errorf("debtree: process %d is no longer in mount namespace %s (%q, %v)", pid, ns, got, err)
	}
	return f, nil
}

// NamespaceProcesses returns the processes in mount namespace ns, as
// /proc/PID/ns/mnt reads. Unless ns is pinned (PinNamespace), a namespace
// made after ns ended may go by the same name.
func NamespaceProcesses(ns string) []int {
	if ns == "" {
		return nil
	}
	links, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
	var pids []int
	for _, link := range links {
		if l, err := os.Readlink(link); err == nil && l == ns {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(link))))
			pids = append(pids, pid)
		}
	}
	return pids
}

// Exited reports whether the server's main process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// GroupProcesses returns the live processes of process group pgid.
func GroupProcesses(pgid int) []int { return procgroup.Processes(pgid) }

// Server is what StartForTest needs of a started server.
type Server interface {
	LogFile() string
	Stop() error
}

// StartForTest starts the server unpacked as name with start, for the test,
// and stops it when the test ends, showing the end of its log if the test
// failed. It skips the test in -short mode and where the machine cannot run
// private servers (not root, no mount namespaces), and fails it when the
// server is not unpacked (run scripts/servers.sh) or does not come up.
func StartForTest[S Server](tb testing.TB, name string, start func(ctx context.Context, tree Tree, dir string) (S, error)) S {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("%stest: end-to-end test against %s skipped in -short mode", name, name)
	}
	if err := CanRun(); err != nil {
		tb.Skipf("%stest: %v", name, err)
	}
	tree, err := Find(name)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := start(ctx, tree, tb.TempDir())
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
