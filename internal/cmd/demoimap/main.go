// Command demoimap serves generated hibachi-catering mail over IMAP on a
// loopback address, for `make demo` and for trying backfill by hand:
//
//	go run ./internal/cmd/demoimap -addr 127.0.0.1:0 -n 2000 -seed 1 \
//		-user support@example.com -password demo -ready-file /tmp/demoimap.url
//
// Once every message is loaded it writes the inbox URL (such as
// imap://support%40example.com@127.0.0.1:40123/INBOX) to the ready file,
// atomically, so a script can wait for the file to appear; it removes the
// file again when it stops. It runs until SIGINT or SIGTERM and exits 0 then.
// Exit code 2 means bad usage, 1 any other failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "demoimap:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line.
type usageError struct{ error }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demoimap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `host:port` to listen on; port 0 picks a free port")
	n := fs.Int("n", 2000, "number of messages to load into INBOX")
	seed := fs.Int64("seed", 1, "generator seed: the same seed and -n give the same mailbox")
	user := fs.String("user", imaptest.DefaultUsername, "IMAP user name")
	password := fs.String("password", "demo", "IMAP password")
	readyFile := fs.String("ready-file", "", "write the inbox URL to this `file` once loaded")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case *n < 0:
		return usageError{fmt.Errorf("-n %d: want 0 or more messages", *n)}
	}
	// Plaintext login with a known password: never beyond this machine.
	if err := imaptest.CheckLoopback(*addr); err != nil {
		return usageError{fmt.Errorf("-addr: %w", err)}
	}
	if *readyFile != "" {
		// A file left by an earlier run must not tell a script we are ready.
		if err := os.Remove(*readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}

	srv, err := imaptest.NewStandalone(*addr, *user, *password)
	if err != nil {
		return err
	}
	defer srv.Close()

	start := time.Now()
	var size int64
	err = mailgen.Each(*seed, *n, func(m mailgen.Mail) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		size += int64(len(m.Raw))
		_, err := srv.AppendMail(imaptest.Inbox, m)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while loading: a normal way to stop
		}
		return fmt.Errorf("load messages: %w", err)
	}

	url := srv.URL(imaptest.Inbox)
	if *readyFile != "" {
		if err := writeAtomic(*readyFile, []byte(url+"\n")); err != nil {
			return fmt.Errorf("ready file: %w", err)
		}
		defer os.Remove(*readyFile)
	}
	fmt.Fprintf(stderr, "demoimap: %d messages (%.1f MB, seed %d) loaded in %v; serving %s until interrupted\n",
		*n, float64(size)/1e6, *seed, time.Since(start).Round(time.Millisecond), url)

	<-ctx.Done()
	fmt.Fprintln(stderr, "demoimap: stopping")
	return nil
}

// writeAtomic writes data to a temporary file beside path and renames it into
// place, so a reader never sees a partial line.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
