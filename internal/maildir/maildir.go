// Package maildir writes messages into a Maildir the way a delivery agent
// does, for the test servers (Dovecot, Courier) that read Maildirs.
package maildir

import (
	"os"
	"path/filepath"
	"time"
)

// Deliver writes one message into the Maildir dir: into tmp, then renamed
// into cur as base+":2," (no flags: unread), so a running server never sees
// half a file. The file is owned by uid:gid, and its mtime is date, which
// Dovecot and Courier take as the message's INTERNALDATE.
func Deliver(dir, base string, raw []byte, date time.Time, uid, gid int) error {
	return DeliverFlagged(dir, base, "", raw, date, uid, gid)
}

// DeliverFlagged is Deliver with Maildir flags: the letters after ":2,"
// in the file name, in ASCII order (S seen, F flagged, R replied).
func DeliverFlagged(dir, base, flags string, raw []byte, date time.Time, uid, gid int) error {
	tmp := filepath.Join(dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Chown(tmp, uid, gid)
	}
	if err == nil {
		err = os.Chtimes(tmp, date, date)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "cur", base+":2,"+flags))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
