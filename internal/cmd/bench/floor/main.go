// Command floor is the benchmark's raw-fetch floor: the least work any client
// must do to copy a mailbox. One connection, one `UID FETCH 1:* BODY.PEEK[]`,
// every literal read and thrown away: no parsing, no storage, no second round
// trip. It prints {"messages":N,"bytes":B} on stdout.
//
//	BENCH_IMAP_PASSWORD=... floor -addr 127.0.0.1:PORT -user NAME [-mailbox INBOX]
//
// The password comes from the environment because an argument shows in ps.
// It logs in in plaintext, so only to a loopback address. It is a program of
// its own, importing little beyond go-imap, so that its peak RSS is that of a
// minimal client and not of the benchmark's code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// passwordEnv names the variable holding the IMAP password.
const passwordEnv = "BENCH_IMAP_PASSWORD"

// result is what floor prints.
type result struct {
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "IMAP server `host:port` (plaintext, loopback only)")
	user := fs.String("user", "", "IMAP user name; the password is read from $"+passwordEnv)
	mailbox := fs.String("mailbox", "INBOX", "mailbox to fetch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if *user == "" {
		return errors.New("-user is required")
	}
	res, err := fetchAll(ctx, *addr, *user, os.Getenv(passwordEnv), *mailbox)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// fetchAll downloads every message of the mailbox over one connection and
// discards it.
func fetchAll(ctx context.Context, addr, user, password, mailbox string) (result, error) {
	var res result
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	// go-imap takes no context: closing the connection unblocks it.
	defer context.AfterFunc(ctx, func() { c.Close() })()

	if err := c.Login(user, password).Wait(); err != nil {
		return res, fmt.Errorf("login as %s: %w", user, err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return res, fmt.Errorf("examine %s: %w", mailbox, err)
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
	cmd := c.Fetch(all, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer cmd.Close()
	buf := make([]byte, 64<<10)
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || body.Literal == nil {
				continue
			}
			n, err := io.CopyBuffer(io.Discard, onlyReader{body.Literal}, buf)
			if err != nil {
				return res, fmt.Errorf("read message %d: %w", msg.SeqNum, err)
			}
			res.Messages++
			res.Bytes += n
		}
	}
	if err := cmd.Close(); err != nil {
		return res, fmt.Errorf("fetch 1:*: %w", err)
	}
	logout := make(chan struct{})
	go func() {
		_ = c.Logout().Wait() // best effort: the numbers are in
		close(logout)
	}()
	select {
	case <-logout:
	case <-time.After(2 * time.Second):
	}
	return res, nil
}

// onlyReader hides everything but Read, so io.CopyBuffer uses our buffer
// rather than io.Discard's small one.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// checkLoopback refuses an address that is not on this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback IP address", addr)
	}
	return nil
}
