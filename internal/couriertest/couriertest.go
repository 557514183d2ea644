package couriertest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/debtree"
	"github.com/myhibachi/backfill/internal/testserver"
)

// Server is a running Courier-IMAP started by Start.
type Server struct {
	debtree.Instance

	maildir string
	mailUID int
	mailGID int
	seq     atomic.Int64 // makes Maildir file names unique and ordered
}

// Start starts Courier for the test and stops it when the test ends. It
// skips the test in -short mode and where the machine cannot run private
// servers (not root, no mount namespaces), and fails it when Courier is not
// unpacked (run scripts/servers.sh) or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return debtree.StartForTest(tb, "courier", func(ctx context.Context, tree debtree.Tree, dir string) (*Server, error) {
		return start(ctx, tree, dir, "cs@myhibachichef.com", "courier-pw")
	})
}

// Settle opens the INBOX read-write once and logs out, as a user's mail
// client does. Until then Courier has no UID list for a Maildir: every
// read-only session (EXAMINE) numbers the messages afresh under a new
// UIDVALIDITY. Settle after loading, unless a test wants that behaviour.
func (s *Server) Settle() error {
	c, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		return fmt.Errorf("couriertest: %w", err)
	}
	defer c.Close()
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		return fmt.Errorf("couriertest: login: %w", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("couriertest: SELECT INBOX: %w", err)
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("couriertest: LOGOUT: %w", err)
	}
	return nil
}

func start(ctx context.Context, tree debtree.Tree, dir, name, password string) (*Server, error) {
	s := &Server{Instance: debtree.NewInstance(dir, "courier.log", name, password)}
	mail, err := user.Lookup("mail")
	if err != nil {
		return nil, fmt.Errorf("couriertest: %w", err)
	}
	s.mailUID, _ = strconv.Atoi(mail.Uid)
	s.mailGID, _ = strconv.Atoi(mail.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := testserver.MakeSearchable(dir, "user mail"); err != nil {
		return nil, fmt.Errorf("couriertest: %w", err)
	}
	home := filepath.Join(dir, "home")
	s.maildir = filepath.Join(home, "Maildir")
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(home, s.mailUID, s.mailGID); err != nil {
		return nil, err
	}
	if err := s.makeMaildir(); err != nil {
		return nil, fmt.Errorf("couriertest: %w", err)
	}
	etc := filepath.Join(dir, "etc")
	if err := s.writeAuth(tree, filepath.Join(etc, "courier"), home); err != nil {
		return nil, fmt.Errorf("couriertest: %w", err)
	}

	err = s.Launch(ctx, tree, etc, func(port int) (string, error) { return launchScript(port), nil })
	if err != nil {
		return nil, fmt.Errorf("couriertest: %w", err)
	}
	return s, nil
}

// writeAuth writes authdaemond's configuration and the userdb, compiled
// with the tree's makedatprog as makeuserdb would: the password, hashed,
// goes to userdbshadow.dat.
func (s *Server) writeAuth(tree debtree.Tree, etc, home string) error {
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	rc := "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=2\n" +
		"authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n"
	if err := os.WriteFile(filepath.Join(etc, "authdaemonrc"), []byte(rc), 0o644); err != nil {
		return err
	}
	if strings.ContainsAny(s.User, "\t\n|") || strings.ContainsAny(s.Password, "\n") {
		return fmt.Errorf("user %q or its password holds a tab, newline or |", s.User)
	}
	sum := sha256.Sum256([]byte(s.Password))
	db := fmt.Sprintf("%s\tuid=%d|gid=%d|home=%s|mail=%s|_=\n.\n", s.User, s.mailUID, s.mailGID, home, s.maildir)
	shadow := fmt.Sprintf("%s\tsystempw={SHA256}%s\n.\n", s.User, base64.StdEncoding.EncodeToString(sum[:]))
	for _, f := range []struct{ name, text string }{{"userdb", db}, {"userdbshadow", shadow}} {
		cmd := exec.Command(filepath.Join(tree.Root, "usr/lib/courier/courier-authlib/makedatprog"), "-",
			filepath.Join(etc, f.name+".tmp"), filepath.Join(etc, f.name+".dat"))
		cmd.Env = []string{"LD_LIBRARY_PATH=" + filepath.Join(tree.Root, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(tree.Root, "usr/lib")}
		cmd.Stdin = strings.NewReader(f.text)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("makedatprog %s: %w: %s", f.name, err, out)
		}
	}
	return nil
}

// launchScript starts authdaemond, waits for its socket, and runs
// couriertcpd with imaplogin and imapd as Debian's init script does, with
// the settings of Debian's /etc/courier/imapd passed in the environment.
func launchScript(port int) string {
	return `mkdir -p /run/courier/authdaemon
chown daemon:daemon /run/courier/authdaemon
chmod 750 /run/courier/authdaemon
/usr/lib/courier/courier-authlib/authdaemond </dev/null &
i=0
while [ ! -S /run/courier/authdaemon/socket ]; do
  i=$((i+1)); [ $i -lt 500 ] || { echo "authdaemond did not start"; exit 1; }
  sleep 0.01
done
export IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
export IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"
export IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=60 IMAP_MAILBOX_SANITY_CHECK=1 IMAP_USELOCKS=1 IMAP_UMASK=022
export IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH=Trash:7 IMAP_MOVE_EXPUNGE_TO_TRASH=0 IMAP_CHECK_ALL_FOLDERS=0
export IMAP_ENHANCEDIDLE=0 IMAP_DISABLETHREADSORT=0 IMAP_OBSOLETE_CLIENT=0 IMAP_STARTTLS=NO IMAP_TLS_REQUIRED=0
exec /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup ` +
		strconv.Itoa(port) + ` /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir </dev/null`
}

// makeMaildir creates the Maildir and its cur, new and tmp folders, owned by
// the mail user that imapd runs as.
func (s *Server) makeMaildir() error {
	for _, d := range []string{s.maildir, filepath.Join(s.maildir, "cur"), filepath.Join(s.maildir, "new"), filepath.Join(s.maildir, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := os.Chown(d, s.mailUID, s.mailGID); err != nil {
			return err
		}
	}
	return nil
}
