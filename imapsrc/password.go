package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"time"
)

// ErrNotRunnable means a command could not be started at all: no such
// program, or not executable. It will not pass by itself.
var ErrNotRunnable = errors.New("cannot be run")

// maxStderrShown bounds what of a failed command's stderr goes into its
// error.
const maxStderrShown = 200

// PasswordCommand runs argv without a shell (pass show mail/sales, a
// vault CLI, a script) and returns the first line it prints, its line
// ending stripped: the password of an inbox whose registration holds no
// secret. timeout zero means 30 s. The output is never part of an error;
// the command's stderr (trimmed, its first 200 bytes) is, as that is where
// such commands say why they failed. A program that cannot be started
// gives an error wrapping ErrNotRunnable.
func PasswordCommand(ctx context.Context, argv []string, timeout time.Duration) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("password command: empty command")
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := argv[0]
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxTokenOutput, maxTokenOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that keeps stderr open must not hold the run past the timeout.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, exec.ErrDot) || errors.Is(err, fs.ErrNotExist) ||
			errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("password command %s %w: %w", name, ErrNotRunnable, err)
		}
		return "", fmt.Errorf("password command %s: %w", name, err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no password within %v", timeout)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > maxStderrShown {
			msg = strings.ToValidUTF8(msg[:maxStderrShown], "") + "..."
		}
		if msg == "" {
			return "", fmt.Errorf("password command %s: %w (it wrote nothing to stderr)", name, err)
		}
		return "", fmt.Errorf("password command %s: %w: %s", name, err, msg)
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	password := strings.TrimSuffix(line, "\r")
	if password == "" {
		return "", fmt.Errorf("password command %s printed no password (its first line is empty)", name)
	}
	return password, nil
}
