package debtree

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/myhibachi/backfill/internal/testserver"
)

// Instance is what every private server shares: one user's login, a
// plaintext listener on a free loopback port and the processes behind it.
// couriertest and cyrustest embed it.
type Instance struct {
	User     string // the login, user@domain
	Password string

	dir, logName, addr string
	proc               *Proc
}

// NewInstance makes the Instance of a server kept in dir, writing its
// output to dir/logName.
func NewInstance(dir, logName, user, password string) Instance {
	return Instance{User: user, Password: password, dir: dir, logName: logName}
}

// Launch starts the server from tree on a free loopback port: script gets
// the port, and may write config files naming it before it returns the
// shell command that runs the server (see Launch).
func (i *Instance) Launch(ctx context.Context, tree Tree, etcDir string, script func(port int) (string, error)) error {
	_, err := testserver.OnFreePort(ctx, func(port int) error {
		i.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd, err := script(port)
		if err != nil {
			return err
		}
		p, err := Launch(ctx, tree, etcDir, i.LogFile(), i.addr, cmd)
		i.proc = p
		return err
	})
	return err
}

// Dir returns the directory the server keeps its files in.
func (i *Instance) Dir() string { return i.dir }

// Addr returns the host:port of the plaintext IMAP listener.
func (i *Instance) Addr() string { return i.addr }

// URL returns the imap:// URL of the user's mailbox, the @ in the user name
// percent-encoded.
func (i *Instance) URL(mailbox string) string {
	u := url.URL{Scheme: "imap", User: url.User(i.User), Host: i.addr, Path: "/" + mailbox}
	return u.String()
}

// LogFile returns the path of the server's output.
func (i *Instance) LogFile() string { return filepath.Join(i.dir, i.logName) }

// Pid returns the process group of the server's processes.
func (i *Instance) Pid() int { return i.proc.Pid() }

// Stop ends every process of the server. Stopping twice does nothing.
func (i *Instance) Stop() error { return i.proc.Stop() }

// Proc returns the server's processes, for tests of the tooling itself.
func (i *Instance) Proc() *Proc { return i.proc }
