package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/mailgen"
)

func TestFetchesEveryMessage(t *testing.T) {
	srv := imaptest.Start(t)
	mails := mailgen.Generate(7, 40)
	srv.AppendMails(t, mails)
	want := result{Messages: len(mails)}
	for _, m := range mails {
		want.Bytes += int64(len(m.Raw))
	}

	t.Setenv(passwordEnv, srv.Password)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-addr", srv.Addr(), "-user", srv.Username}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var got result
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	if got != want {
		t.Errorf("fetched %+v; want %+v", got, want)
	}
}

func TestRefusesRemoteAddresses(t *testing.T) {
	for _, addr := range []string{"", "imap.example.com:143", "192.0.2.1:143", "[::1]"} {
		if err := run(context.Background(), []string{"-addr", addr, "-user", "u"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("-addr %q: no error", addr)
		}
	}
}

// The probes ask for sizes or structures, and structure-over:N only for
// the messages over N bytes.
func TestProbes(t *testing.T) {
	srv := imaptest.Start(t)
	mails := mailgen.Generate(7, 40)
	srv.AppendMails(t, mails)
	const over = 20000
	large := 0
	for _, m := range mails {
		if len(m.Raw) > over {
			large++
		}
	}
	if large == 0 || large == len(mails) {
		t.Fatalf("%d of %d messages over %d bytes: pick another bound", large, len(mails), over)
	}
	t.Setenv(passwordEnv, srv.Password)
	for items, want := range map[string]result{
		"size":                               {Messages: len(mails)},
		"structure":                          {Messages: len(mails), Structures: len(mails)},
		"structure-over:" + fmt.Sprint(over): {Messages: len(mails), Structures: large},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"-addr", srv.Addr(), "-user", srv.Username, "-items", items}, &stdout, &stderr); err != nil {
			t.Fatalf("-items %s: %v\n%s", items, err, stderr.String())
		}
		var got result
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("-items %s: output %q: %v", items, stdout.String(), err)
		}
		if got != want {
			t.Errorf("-items %s: %+v; want %+v", items, got, want)
		}
	}
	if err := run(context.Background(), []string{"-addr", srv.Addr(), "-user", srv.Username, "-items", "headers"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("-items headers: no error")
	}
}
