package imapsrc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// passwordScript writes a password command as an operator would: a shell
// script that prints the password.
func passwordScript(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPasswordCommand(t *testing.T) {
	ctx := context.Background()
	// Spaces are part of a password; only the line ending is not.
	path := passwordScript(t, "printf ' s3cret pw \\r\\nsecond line\\n'\n", 0o755)
	got, err := PasswordCommand(ctx, []string{path}, 0)
	if err != nil || got != " s3cret pw " {
		t.Fatalf("PasswordCommand = %q, %v; want %q", got, err, " s3cret pw ")
	}
	path = passwordScript(t, "echo \"$1-$2\"\n", 0o755)
	if got, err := PasswordCommand(ctx, []string{path, "a b", "c"}, 0); err != nil || got != "a b-c" {
		t.Fatalf("PasswordCommand with arguments = %q, %v; want %q", got, err, "a b-c")
	}
}

func TestPasswordCommandFailures(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name        string
		body        string
		timeout     time.Duration
		want        string
		notRunnable bool
	}{
		{name: "fails", body: "echo never-shown\necho 'vault is sealed' >&2\nexit 3\n", want: "exit status 3: vault is sealed"},
		{name: "silent failure", body: "echo never-shown\nexit 4\n", want: "exit status 4 (it wrote nothing to stderr)"},
		{name: "long stderr", body: "printf '%0300d' 0 >&2\nexit 1\n", want: ": " + strings.Repeat("0", 200) + "..."},
		{name: "prints nothing", body: "exit 0\n", want: "printed no password"},
		{name: "empty first line", body: "echo\necho never-shown\n", want: "printed no password"},
		// The command sleeps far longer than the test may take, so only a
		// timeout that works can end it in time.
		{name: "hangs", body: "sleep 30\necho never-shown\n", timeout: 200 * time.Millisecond, want: "no password within 200ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := passwordScript(t, tt.body, 0o755)
			start := time.Now()
			got, err := PasswordCommand(ctx, []string{path}, tt.timeout)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrNotRunnable) {
				t.Fatalf("PasswordCommand = %q, %v; want an error containing %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), "never-shown") || strings.Contains(err.Error(), strings.Repeat("0", 201)) {
				t.Fatalf("the error shows stdout or too much stderr: %v", err)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("took %v: the timeout did not stop the command", time.Since(start))
			}
		})
	}
	notExecutable := passwordScript(t, "echo pw\n", 0o644)
	for _, argv := range [][]string{{"/nonexistent/password-cmd"}, {"no-such-password-program-anywhere"}, {notExecutable}} {
		_, err := PasswordCommand(ctx, argv, 0)
		if !errors.Is(err, ErrNotRunnable) || !strings.Contains(err.Error(), argv[0]) {
			t.Fatalf("PasswordCommand(%q) = %v; want ErrNotRunnable naming it", argv[0], err)
		}
	}
}
