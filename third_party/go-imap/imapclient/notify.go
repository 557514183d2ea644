package imapclient

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// Notify sends a NOTIFY SET command.
//
// The server then reports events in the mailboxes named at any time; for a
// mailbox that is not selected it sends STATUS responses, delivered to
// UnilateralDataHandler.Status.
//
// This command requires support for the NOTIFY extension.
func (c *Client) Notify(options *imap.NotifyOptions) *NotifyCommand {
	if options == nil || len(options.Items) == 0 {
		return notifyError(fmt.Errorf("imapclient: NOTIFY SET needs at least one item"))
	}
	for _, item := range options.Items {
		if len(item.Mailboxes) == 0 || len(item.Events) == 0 {
			return notifyError(fmt.Errorf("imapclient: NOTIFY SET item needs mailboxes and events"))
		}
	}

	cmd := &NotifyCommand{}
	enc := c.beginCommand("NOTIFY", cmd)
	enc.SP().Atom("SET")
	for _, item := range options.Items {
		enc.SP().Special('(').Atom("MAILBOXES").SP()
		enc.List(len(item.Mailboxes), func(i int) {
			enc.Mailbox(item.Mailboxes[i])
		})
		enc.SP().List(len(item.Events), func(i int) {
			enc.Atom(string(item.Events[i]))
		})
		enc.Special(')')
	}
	enc.end()
	return cmd
}

// NotifyNone sends a NOTIFY NONE command: the server stops sending the
// events asked for with Notify.
//
// This command requires support for the NOTIFY extension.
func (c *Client) NotifyNone() *NotifyCommand {
	cmd := &NotifyCommand{}
	enc := c.beginCommand("NOTIFY", cmd)
	enc.SP().Atom("NONE")
	enc.end()
	return cmd
}

func notifyError(err error) *NotifyCommand {
	done := make(chan error)
	close(done)
	return &NotifyCommand{commandBase: commandBase{done: done, err: err}}
}

// NotifyCommand is a NOTIFY command.
type NotifyCommand struct {
	commandBase
}

// Wait blocks until the command has completed.
func (cmd *NotifyCommand) Wait() error {
	return cmd.wait()
}
