package cyrustest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/debtree"
	"github.com/myhibachi/backfill/internal/testserver"
)

// Server is a running Cyrus started by Start.
type Server struct {
	debtree.Instance

	admin string // password of the administrator cyrus
}

// Start starts Cyrus for the test with its user's INBOX created, and stops
// it when the test ends. It skips the test in -short mode and where the
// machine cannot run private servers (not root, no mount namespaces), and
// fails it when Cyrus is not unpacked (run scripts/servers.sh) or does not
// come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return debtree.StartForTest(tb, "cyrus", func(ctx context.Context, tree debtree.Tree, dir string) (*Server, error) {
		return start(ctx, tree, dir, "cs@myhibachichef.com", "cyrus-pw")
	})
}

// configTemplate is a complete imapd.conf, laid over /etc/imapd.conf in the
// server's namespace, where every Cyrus program reads it.
var configTemplate = template.Must(template.New("imapd.conf").Parse(`# Written by cyrustest.
configdirectory: {{.Dir}}/conf
partition-default: {{.Dir}}/spool
sievedir: {{.Dir}}/sieve
admins: cyrus
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {{.Dir}}/sasldb2
sasl_mech_list: PLAIN LOGIN
# Logins are user@domain, as providers have them.
virtdomains: userid
defaultdomain: localhost
unixhierarchysep: yes
idlesocket: {{.Dir}}/conf/socket/idle
notifysocket: {{.Dir}}/conf/socket/notify
lmtpsocket: {{.Dir}}/conf/socket/lmtp
syslog_prefix: cyrustest
`))

// cyrus.conf: only the database recovery Cyrus needs at start, and imapd.
var servicesTemplate = template.Must(template.New("cyrus.conf").Parse(`# Written by cyrustest.
START {
  recover cmd="ctl_cyrusdb -r"
}
SERVICES {
  imap cmd="imapd" listen="127.0.0.1:{{.Port}}" prefork=1 maxchild=50
}
EVENTS {
}
`))

func start(ctx context.Context, tree debtree.Tree, dir, name, password string) (*Server, error) {
	s := &Server{Instance: debtree.NewInstance(dir, "cyrus.log", name, password), admin: "cyrus-admin-pw"}
	cyrus, err := user.Lookup("cyrus")
	if err != nil {
		return nil, fmt.Errorf("cyrustest: system user cyrus: %w; run scripts/servers.sh cyrus", err)
	}
	uid, _ := strconv.Atoi(cyrus.Uid)
	gid, _ := strconv.Atoi(cyrus.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := testserver.MakeSearchable(dir, "user cyrus"); err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	// What Debian's cyrus-makedirs creates.
	dirs := []string{"spool", "spool/stage.", "sieve", "conf"}
	for _, d := range []string{"db", "proc", "socket", "log", "msg", "user", "quota", "lock"} {
		dirs = append(dirs, "conf/"+d)
	}
	for _, d := range dirs {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o750); err != nil {
			return nil, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := s.writeSASL(tree, uid, gid); err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		return nil, err
	}
	if err := writeTemplate(filepath.Join(etc, "imapd.conf"), configTemplate, map[string]string{"Dir": dir}); err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}

	err = s.Launch(ctx, tree, etc, func(port int) (string, error) {
		if err := writeTemplate(filepath.Join(etc, "cyrus.conf"), servicesTemplate, map[string]int{"Port": port}); err != nil {
			return "", err
		}
		// master drops privileges to cyrus itself; -D keeps it in the
		// foreground.
		return "exec /usr/lib/cyrus/bin/master -D -p " + filepath.Join(dir, "conf", "master.pid"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	if err := s.createInbox(); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("cyrustest: %w\n%s", err, testserver.Tail(s.LogFile(), 2000))
	}
	return s, nil
}

// writeSASL stores the user's and the administrator's passwords in the
// sasldb with the tree's saslpasswd2.
func (s *Server) writeSASL(tree debtree.Tree, uid, gid int) error {
	db := filepath.Join(s.Dir(), "sasldb2")
	local, domain, _ := strings.Cut(s.User, "@")
	for _, u := range []struct{ args []string }{
		{[]string{"-u", domain, local}},
		{[]string{"cyrus"}},
	} {
		pw := s.Password
		if u.args[0] == "cyrus" {
			pw = s.admin
		}
		cmd := exec.Command(filepath.Join(tree.Root, "usr/sbin/saslpasswd2"), append([]string{"-p", "-c", "-f", db}, u.args...)...)
		cmd.Env = []string{"LD_LIBRARY_PATH=" + filepath.Join(tree.Root, "usr/lib/x86_64-linux-gnu")}
		cmd.Stdin = strings.NewReader(pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("saslpasswd2 %s: %w: %s", u.args[len(u.args)-1], err, out)
		}
	}
	return os.Chown(db, uid, gid)
}

// createInbox creates the user's INBOX as the administrator, as cyradm's
// "cm user/NAME" does.
func (s *Server) createInbox() error {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login("cyrus", s.admin).Wait(); err != nil {
		return fmt.Errorf("login as administrator: %w", err)
	}
	if err := c.Create("user/"+s.User, nil).Wait(); err != nil {
		return fmt.Errorf("CREATE user/%s: %w", s.User, err)
	}
	return c.Logout().Wait()
}

func writeTemplate(path string, t *template.Template, data any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = t.Execute(f, data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}
