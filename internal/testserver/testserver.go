// Package testserver holds what the throwaway servers of the test tooling
// (pgtest's PostgreSQL, dovecottest's Dovecot) need alike: free loopback
// ports, directories their unprivileged users can reach, and log tails for
// error messages.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether nothing listens on 127.0.0.1:port.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// MakeSearchable lets other users through dir's parents, as a server running
// as its own user (postgres, mail, dovenull) must reach dir. Only parents
// below the temporary directory are changed (t.TempDir makes them 0700);
// elsewhere a closed parent is an error naming who cannot get through.
func MakeSearchable(dir, who string) error {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(real); p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
			return fmt.Errorf("%s cannot reach %s: %s is not searchable; use a directory under %s", who, dir, p, tmp)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
			return err
		}
	}
	return nil
}

// Tail returns the last n bytes of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// ErrPortTaken wraps a start's error when another port the server needs
// (besides the one OnFreePort gave it) was taken meanwhile, so that
// OnFreePort tries again.
var ErrPortTaken = errors.New("a port the server needs was taken")

// OnFreePort calls start with a free loopback port until it succeeds.
// Another process may take the port between the probe and the server's
// bind, so a start that fails while the port is taken (or with an error
// wrapping ErrPortTaken) is tried again on a new port, up to three times.
// It returns the port the server took.
func OnFreePort(ctx context.Context, start func(port int) error) (int, error) {
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return 0, err
		}
		err = start(port)
		if err == nil {
			return port, nil
		}
		if attempt == 3 || ctx.Err() != nil || (PortFree(port) && !errors.Is(err, ErrPortTaken)) {
			return 0, err
		}
	}
}
