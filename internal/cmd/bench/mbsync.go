package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// isync is the installed mbsync: its path and version.
type isync struct {
	path         string
	version      string // as printed: "isync 1.4.4"
	major, minor int
}

// findIsync locates mbsync and reads its version, which decides the
// configuration syntax.
func findIsync() (isync, error) {
	path, err := exec.LookPath("mbsync")
	if err != nil {
		return isync{}, fmt.Errorf("mbsync: %w; install Debian's isync package (scripts/deps.sh isync)", err)
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return isync{}, fmt.Errorf("%s --version: %w", path, err)
	}
	v := isync{path: path, version: strings.TrimSpace(string(out))}
	if v.major, v.minor, err = parseIsyncVersion(v.version); err != nil {
		return isync{}, err
	}
	if v.major < 1 || (v.major == 1 && v.minor < 3) {
		return isync{}, fmt.Errorf("%s: want isync 1.3 or later (SSLType, AuthMechs)", v.version)
	}
	return v, nil
}

var isyncVersionRE = regexp.MustCompile(`(\d+)\.(\d+)`)

// parseIsyncVersion reads "isync 1.4.4" (or "1.3.0") into 1 and 4.
func parseIsyncVersion(s string) (major, minor int, err error) {
	m := isyncVersionRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("mbsync --version: no version in %q", s)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, nil
}

// mbsyncJob is one mbsync run: which server, into which Maildir, durable or
// not.
type mbsyncJob struct {
	Host, Port     string
	User, Password string
	Maildir        string // the near side's root; INBOX goes to Maildir/INBOX
	FSync          bool
}

// mbsyncConfigTemplate is a complete mbsyncrc: one IMAP account, one Maildir,
// one channel that pulls INBOX. isync 1.4 renamed Master/Slave to Far/Near
// and the Create value with them; FarSide and NearSide hold the spelling.
var mbsyncConfigTemplate = template.Must(template.New("mbsyncrc").Parse(`# Written by backfill's internal/cmd/bench for one run.
# Global options come before any section.
FSync {{if .FSync}}yes{{else}}no{{end}}

IMAPAccount bench
Host {{.Host}}
Port {{.Port}}
User "{{.User}}"
Pass "{{.Password}}"
# Plaintext, loopback only (isync 1.4 spelling; 1.3 knows it too). LOGIN is
# built into mbsync, where PLAIN needs Cyrus SASL's modules; mbsync warns that
# the password goes in the clear, which on loopback is fine.
SSLType None
AuthMechs LOGIN

IMAPStore far
Account bench

MaildirStore near
Path "{{.Maildir}}/"
Inbox "{{.Maildir}}/INBOX"

Channel bench
{{.FarSide}} :far:INBOX
{{.NearSide}} :near:INBOX
Sync Pull
Create {{.NearSide}}
Expunge None
SyncState *
`))

// config returns the mbsyncrc for the installed version.
func (j mbsyncJob) config(v isync) (string, error) {
	if strings.ContainsAny(j.User+j.Password+j.Maildir, "\"\n\\") {
		return "", errors.New("mbsync: user, password and path must be free of quotes, backslashes and newlines")
	}
	far, near := "Far", "Near"
	if v.major == 1 && v.minor < 4 {
		far, near = "Master", "Slave"
	}
	var b strings.Builder
	err := mbsyncConfigTemplate.Execute(&b, struct {
		mbsyncJob
		FarSide, NearSide string
	}{j, far, near})
	return b.String(), err
}

// mbsyncChild prepares a run of mbsync: the config file in dir (0600, it
// holds the password) and the command. HOME points into dir so that no
// ~/.mbsyncrc or ~/.mbsync state of the machine takes part.
func mbsyncChild(v isync, j mbsyncJob, dir string) (child, error) {
	conf, err := j.config(v)
	if err != nil {
		return child{}, err
	}
	rc := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		return child{}, fmt.Errorf("mbsync: %w", err)
	}
	if err := os.MkdirAll(j.Maildir, 0o700); err != nil {
		return child{}, fmt.Errorf("mbsync: %w", err)
	}
	return child{
		name: "mbsync",
		path: v.path,
		args: []string{"--config", rc, "--quiet", "bench"},
		env:  []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "LANG=C"},
		dir:  dir,
	}, nil
}

// countMaildir counts the messages mbsync stored in a Maildir folder and
// their bytes.
func countMaildir(folder string) (messages int, bytes int64, err error) {
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			return 0, 0, fmt.Errorf("count %s: %w", folder, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return 0, 0, fmt.Errorf("count %s: %w", folder, err)
			}
			messages++
			bytes += info.Size()
		}
	}
	return messages, bytes, nil
}

// runMbsync runs a prepared mbsync and checks that it really copied want
// messages.
func runMbsync(ctx context.Context, c child, maildir string, want int) (measurement, error) {
	m, err := c.run(ctx)
	if err != nil {
		return m, err
	}
	return m, checkMaildir(maildir, want)
}

// checkMaildir fails unless the Maildir's INBOX holds want messages: mbsync
// can exit 0 having copied nothing (a channel that matched no mailbox), and a
// benchmark of that would flatter it.
func checkMaildir(maildir string, want int) error {
	got, _, err := countMaildir(filepath.Join(maildir, "INBOX"))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("mbsync exited 0 but stored %d of %d messages in %s", got, want, maildir)
	}
	return nil
}
