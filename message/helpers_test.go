package message

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// crlf turns a fixture written with "\n" into the CRLF form IMAP serves.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// parse parses a fixture with fixed metadata and checks the invariants every
// result must hold.
func parse(t testing.TB, raw string) *Message {
	t.Helper()
	m := Parse([]byte(raw), Meta{UID: 7, UIDValidity: 3, InternalDate: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)})
	checkParsed(t, m)
	return m
}

// checkParsed is checkStorable for a message Parse read without falling
// back: a panic inside the parser is a bug even though the row is stored.
func checkParsed(t testing.TB, m *Message) {
	t.Helper()
	checkStorable(t, m)
	for _, w := range m.Warnings {
		if strings.HasPrefix(w, "internal parser error") {
			t.Errorf("parser panicked: %s", w)
		}
	}
}

// checkStorable asserts what PostgreSQL and the rest of the pipeline rely on:
// every string valid UTF-8 without NUL, ids present, slices non-nil.
func checkStorable(t testing.TB, m *Message) {
	t.Helper()
	if m == nil {
		t.Fatal("Parse returned nil")
	}
	if m.MessageID == "" {
		t.Error("empty MessageID")
	}
	if !strings.HasPrefix(m.ThreadID, "thread_") {
		t.Errorf("ThreadID = %q", m.ThreadID)
	}
	if m.To == nil || m.Cc == nil || m.References == nil || m.Attachments == nil || m.Warnings == nil {
		t.Error("nil slice in result")
	}
	for name, s := range messageStrings(m) {
		if !utf8.ValidString(s) {
			t.Errorf("%s is not valid UTF-8: %q", name, s)
		}
		if strings.IndexByte(s, 0) >= 0 {
			t.Errorf("%s contains NUL: %q", name, s)
		}
	}
}

// messageStrings lists every string in m, slices element by element.
func messageStrings(m *Message) map[string]string {
	out := map[string]string{
		"MessageID": m.MessageID, "ThreadID": m.ThreadID, "FromAddress": m.FromAddress,
		"FromName": m.FromName, "Subject": m.Subject, "TextBody": m.TextBody,
		"HTMLBody": m.HTMLBody, "InReplyTo": m.InReplyTo,
	}
	add := func(name string, list []string) {
		for i, s := range list {
			out[fmt.Sprintf("%s[%d]", name, i)] = s
		}
	}
	add("To", m.To)
	add("Cc", m.Cc)
	add("References", m.References)
	add("Warnings", m.Warnings)
	for i, a := range m.Attachments {
		out[fmt.Sprintf("Attachments[%d].filename", i)] = a.Filename
		out[fmt.Sprintf("Attachments[%d].content_type", i)] = a.ContentType
	}
	return out
}

func hasWarning(m *Message, substr string) bool {
	for _, w := range m.Warnings {
		if strings.Contains(w, substr) {
			return true
		}
	}
	return false
}
