package message

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// realWorldMail returns the paths of the odd and malformed messages shipped
// with enmime (in the module cache) and with CPython's test suite, read where
// they are installed rather than copied into this repository. A missing
// source is skipped, not failed: it depends on the machine.
func realWorldMail(t testing.TB) []string {
	t.Helper()
	var files []string
	if dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/jhillyerd/enmime/v2").Output(); err == nil {
		found, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(dir)), "testdata", "mail", "*.raw"))
		files = append(files, found...)
	}
	if dir, err := exec.Command("python3", "-c", "import test, os; print(os.path.dirname(test.__file__))").Output(); err == nil {
		found, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(dir)), "test_email", "data", "msg_*.txt"))
		files = append(files, found...)
	}
	return files
}

// TestParseRealWorldMail checks that every message of the corpora is stored:
// no panic, clean strings, an id. enmime itself refuses some of them.
func TestParseRealWorldMail(t *testing.T) {
	files := realWorldMail(t)
	if len(files) == 0 {
		t.Skip("neither enmime's testdata nor CPython's test_email data is installed")
	}
	t.Logf("%d messages", len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, form := range [][]byte{raw, bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))} {
				parse(t, string(form))
				// A message cut anywhere is still stored.
				parse(t, string(form[:len(form)/2]))
			}
		})
	}
}

// FuzzParse checks the storage invariants on arbitrary input, and that
// whenever the message's sections are accepted by ParseSections (lean
// fetching) they give the same row.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		alternative,
		"From: a@x\nSubject: =?koi8-r?B?8NLJ18XU?=\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nK=F6ln\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename*0*=UTF-8''a%C3%AF; filename*1=.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n",
		"To: Team: x@y, <z@w>;\nDate: Tue Jun  3 09:15:00 2025\n\n\x00\xff",
		"Content-Type: multipart/alternative\n\n--zz\n\nhi\n--zz--",
		"",
	} {
		f.Add([]byte(seed))
	}
	for _, file := range realWorldMail(f) {
		if raw, err := os.ReadFile(file); err == nil && len(raw) < 8<<10 {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw, Meta{})
		checkParsed(t, m)
		if m.SizeBytes != int64(len(raw)) {
			t.Errorf("SizeBytes = %d, want %d", m.SizeBytes, len(raw))
		}
		checkSectionsAgree(t, raw)
	})
}
