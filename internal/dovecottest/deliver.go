package dovecottest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Deliver saves a message into a user's mailbox as a delivery would
// (doveadm save): clients following the mailbox hear of it, IDLE ones at
// once. It returns when the message is in the mailbox.
func (s *Server) Deliver(user, mailbox string, raw []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, err := program("doveadm")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, "-c", s.conf, "save", "-u", user, "-m", mailbox)
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dovecottest: doveadm save: %w: %s", err, out)
	}
	return nil
}

// AddFlags adds flags (\Seen, \Flagged, keywords) to the message with uid
// in a user's mailbox, as another client would.
func (s *Server) AddFlags(user, mailbox string, uid uint32, flags ...string) error {
	return s.mailCommand("flags", append(append([]string{"add", "-u", user}, strings.Join(flags, " ")),
		"mailbox", mailbox, "uid", strconv.FormatUint(uint64(uid), 10))...)
}

// Expunge removes the message with uid from a user's mailbox, as another
// client deleting it would.
func (s *Server) Expunge(user, mailbox string, uid uint32) error {
	return s.mailCommand("expunge", "-u", user, "mailbox", mailbox, "uid", strconv.FormatUint(uint64(uid), 10))
}

func (s *Server) mailCommand(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := s.doveadm(ctx, append([]string{name}, args...)...); err != nil {
		return fmt.Errorf("dovecottest: doveadm %s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
