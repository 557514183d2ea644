package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestUnknownDateZoneIsLoggedNotGuessed: a Date in a time zone the parser
// cannot place is stored as NULL sent_at, not a time hours off, and the
// reason reaches error_logs as a parser warning while the run succeeds.
func TestUnknownDateZoneIsLoggedNotGuessed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := "From: a@example.com\r\nTo: b@example.com\r\nSubject: zone\r\nMessage-ID: <zone@x>\r\n" +
		"Date: Tue, 3 Jun 2025 09:15:00 XYZT\r\n\r\nhi\r\n"
	uid := f.imap.Append(t, []byte(raw), time.Date(2025, 6, 3, 10, 0, 0, 0, time.UTC))
	f.migrate()
	f.mustRun(0, "--inbox", "demo")
	var sentAt *time.Time
	if err := f.pool.QueryRow(context.Background(), `SELECT sent_at FROM email_messages WHERE message_id = 'zone@x'`).Scan(&sentAt); err != nil {
		t.Fatalf("message not stored: %v", err)
	}
	if sentAt != nil {
		t.Errorf("sent_at = %v, want NULL", sentAt)
	}
	var severity, msg string
	if err := f.pool.QueryRow(context.Background(), `SELECT severity, error_message FROM error_logs
		WHERE error_type = 'parse_warning' AND imap_uid = $1`, int64(uid)).Scan(&severity, &msg); err != nil {
		t.Fatalf("no parse_warning in error_logs for UID %d: %v", uid, err)
	}
	if severity != "warning" || !strings.Contains(msg, "unknown time zone") {
		t.Errorf("error_logs says %s %q, want a warning about the unknown time zone", severity, msg)
	}
}
