// Command floor is the benchmark's raw-fetch floor: the least work any client
// must do to copy a mailbox. One connection, one `UID FETCH 1:* BODY.PEEK[]`,
// every literal read and thrown away: no parsing, no storage, no second round
// trip. It prints {"messages":N,"bytes":B} on stdout.
//
//	BENCH_IMAP_PASSWORD=... floor -addr 127.0.0.1:PORT -user NAME [-mailbox INBOX] [-items ITEMS]
//
// With -items it is a probe of what the server's side of a fetch costs:
// `size` asks `UID FETCH 1:* RFC822.SIZE`, `structure` asks
// `UID FETCH 1:* BODYSTRUCTURE`, and `structure-over:N` asks sizes first
// and then BODYSTRUCTURE only for the messages over N bytes. It then prints
// how many messages answered and how many structures came.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// passwordEnv names the variable holding the IMAP password.
const passwordEnv = "BENCH_IMAP_PASSWORD"

// result is what floor prints.
type result struct {
	Messages   int   `json:"messages"`
	Bytes      int64 `json:"bytes"`
	Structures int   `json:"structures,omitempty"`
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
	items := fs.String("items", "body", "what to fetch: body, size, structure, or structure-over:BYTES")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := parseItems(*items)
	if err != nil {
		return fmt.Errorf("-items: %w", err)
	}
	if err := checkLoopback(*addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if *user == "" {
		return errors.New("-user is required")
	}
	res, err := fetchAll(ctx, *addr, *user, os.Getenv(passwordEnv), *mailbox, p)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// probe is what -items asks for.
type probe struct {
	body      bool  // BODY.PEEK[] of every message
	size      bool  // RFC822.SIZE of every message
	structure bool  // BODYSTRUCTURE of every message, or with over
	over      int64 // only of those larger than this, sizes asked first
}

func parseItems(s string) (probe, error) {
	switch s {
	case "body":
		return probe{body: true}, nil
	case "size":
		return probe{size: true}, nil
	case "structure":
		return probe{structure: true}, nil
	}
	if v, ok := strings.CutPrefix(s, "structure-over:"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n >= 0 {
			return probe{size: true, structure: true, over: n}, nil
		}
	}
	return probe{}, fmt.Errorf("%q: want body, size, structure or structure-over:BYTES", s)
}

// fetchAll fetches what p asks of every message of the mailbox over one
// connection and discards it.
func fetchAll(ctx context.Context, addr, user, password, mailbox string, p probe) (result, error) {
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
	if !p.body {
		res, err := probeAll(c, all, p)
		if err != nil {
			return res, err
		}
		logout(c)
		return res, nil
	}
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
	logout(c)
	return res, nil
}

// probeAll asks for sizes or structures, without bodies.
func probeAll(c *imapclient.Client, all imap.UIDSet, p probe) (result, error) {
	var res result
	set := all
	if p.size {
		msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			return res, fmt.Errorf("fetch 1:* RFC822.SIZE: %w", err)
		}
		res.Messages = len(msgs)
		set = imap.UIDSet{}
		for _, m := range msgs {
			if m.RFC822Size > p.over {
				set.AddNum(m.UID)
			}
		}
	}
	if !p.structure || len(set) == 0 {
		return res, nil
	}
	msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	if err != nil {
		return res, fmt.Errorf("fetch BODYSTRUCTURE: %w", err)
	}
	for _, m := range msgs {
		if m.BodyStructure != nil {
			res.Structures++
		}
	}
	if !p.size {
		res.Messages = len(msgs)
	}
	return res, nil
}

// logout ends the session, best effort: the numbers are in.
func logout(c *imapclient.Client) {
	done := make(chan struct{})
	go func() {
		_ = c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
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
