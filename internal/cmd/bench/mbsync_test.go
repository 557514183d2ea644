package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
)

func TestParseIsyncVersion(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
		wantErr      bool
	}{
		{in: "isync 1.4.4", major: 1, minor: 4},
		{in: "isync 1.3.0\n", major: 1, minor: 3},
		{in: "isync 1.5.0-rc1", major: 1, minor: 5},
		{in: "isync", wantErr: true},
	}
	for _, tt := range tests {
		major, minor, err := parseIsyncVersion(tt.in)
		if (err != nil) != tt.wantErr || major != tt.major || minor != tt.minor {
			t.Errorf("parseIsyncVersion(%q) = %d, %d, %v; want %d, %d, error %v", tt.in, major, minor, err, tt.major, tt.minor, tt.wantErr)
		}
	}
}

// isync 1.4 renamed Master/Slave to Far/Near (it still takes the old words,
// with a warning); 1.3 knows only the old ones.
func TestMbsyncConfigSpelling(t *testing.T) {
	job := mbsyncJob{Host: "127.0.0.1", Port: "1143", User: "u@example.com", Password: "pw", Maildir: "/tmp/m"}
	tests := []struct {
		version     isync
		want, never []string
	}{
		{isync{major: 1, minor: 4}, []string{"Far :far:INBOX", "Near :near:INBOX", "Create Near", "FSync no", "SSLType None", "AuthMechs LOGIN"}, []string{"Master", "Slave"}},
		{isync{major: 1, minor: 3}, []string{"Master :far:INBOX", "Slave :near:INBOX", "Create Slave"}, []string{"Far ", "Near "}},
	}
	for _, tt := range tests {
		conf, err := job.config(tt.version)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(conf, w+"\n") {
				t.Errorf("isync %d.%d: config lacks %q:\n%s", tt.version.major, tt.version.minor, w, conf)
			}
		}
		for _, n := range tt.never {
			if strings.Contains(conf, "\n"+n) {
				t.Errorf("isync %d.%d: config has %q:\n%s", tt.version.major, tt.version.minor, n, conf)
			}
		}
	}
	job.FSync = true
	if conf, _ := job.config(isync{major: 1, minor: 4}); !strings.Contains(conf, "\nFSync yes\n") {
		t.Errorf("FSync true: config lacks FSync yes:\n%s", conf)
	}
	job.Password = `a"b`
	if _, err := job.config(isync{major: 1, minor: 4}); err == nil {
		t.Error("a quote in the password: no error")
	}
}

// TestMbsyncPullsFromDovecot runs the generated configuration for real: the
// benchmark's mbsync row means nothing if mbsync copied nothing.
func TestMbsyncPullsFromDovecot(t *testing.T) {
	is, err := findIsync()
	if err != nil {
		t.Skip(err)
	}
	user := dovecottest.User{Name: "bench@example.com", Password: "secret"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user})
	const n = 30
	mails := func(yield func([]byte, time.Time) bool) {
		for i := range n {
			raw := "From: a@example.com\r\nTo: b@example.com\r\nSubject: m" + string(rune('A'+i)) + "\r\n" +
				"Message-ID: <" + string(rune('A'+i)) + "@example.com>\r\n\r\nbody\r\n"
			if !yield([]byte(raw), time.Date(2024, 1, 1, 0, i, 0, 0, time.UTC)) {
				return
			}
		}
	}
	if err := srv.LoadMaildir(user.Name, mails); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	host, port, _ := strings.Cut(srv.Addr(), ":")
	job := mbsyncJob{Host: host, Port: port, User: user.Name, Password: user.Password, Maildir: filepath.Join(dir, "Mail")}
	c, err := mbsyncChild(is, job, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Run directly: the launcher is another program, tested on its own.
	cmd := exec.Command(c.path, c.args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	got, bytes, err := countMaildir(filepath.Join(job.Maildir, "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	if got != n || bytes == 0 {
		t.Errorf("mbsync stored %d messages (%d bytes); want %d", got, bytes, n)
	}

	// The check the benchmark relies on: a wrong count is an error.
	if err := checkMaildir(job.Maildir, n); err != nil {
		t.Error(err)
	}
	if err := checkMaildir(job.Maildir, n+1); err == nil {
		t.Errorf("checkMaildir with %d wanted, %d stored: no error", n+1, n)
	}
}
