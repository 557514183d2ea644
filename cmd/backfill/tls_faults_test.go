package main

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/myhibachi/backfill/errlog"
	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/internal/dovecottest"
	"github.com/myhibachi/backfill/internal/faultproxy"
	"github.com/myhibachi/backfill/internal/mailgen"
	"github.com/myhibachi/backfill/internal/testca"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
)

// handshakeReset cuts every second connection (which, by which) a few
// hundred bytes into what the server sends: inside the TLS handshake,
// whether TLS starts at once (the ServerHello and the certificate come
// first) or after STARTTLS (Dovecot's greeting and its answer to STARTTLS
// are under 300 bytes).
func handshakeReset(which func(conn int) bool) faultproxy.Rule {
	return faultproxy.ResetAfter(400, which)
}

// odd matches connections 1, 3, 5...: the run's first connection among them.
func odd(conn int) bool { return conn%2 == 1 }

// TestTLSFaults runs against a Dovecot that speaks TLS with a certificate
// of a test CA, which the client trusts through SSL_CERT_FILE, with a
// faultproxy in between: resets during handshakes are retried and the run
// completes; a certificate for another host stops it at once with exit 2.
func TestTLSFaults(t *testing.T) {
	t.Parallel()
	ca, caPath := testca.NewForTest(t)
	certPEM, keyPEM, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	user := dovecottest.User{Name: "cs@myhibachichef.com", Password: "dovecot-pw"}
	srv := dovecottest.NewServer(t, []dovecottest.User{user}, dovecottest.WithTLS(certPEM, keyPEM))
	corpus := mailgen.Generate(59, 300)
	if err := srv.LoadMaildir(user.Name, mails(corpus)); err != nil {
		t.Fatal(err)
	}
	unique := 0
	for _, m := range corpus {
		if m.DuplicateOf < 0 {
			unique++
		}
	}
	imapsURL := func(hostport string) string {
		u := url.URL{Scheme: "imaps", User: url.User(user.Name), Host: hostport, Path: "/INBOX"}
		return u.String()
	}

	t.Run("implicit TLS resets", func(t *testing.T) {
		t.Parallel()
		// The first connection is cut, then every other: the run's first
		// connection, the pre-dials and the workers' joins each meet one.
		proxy := faultproxy.Start(t, srv.TLSAddr(), handshakeReset(odd))
		f := newFixture(t)
		f.migrate()
		f.environ = append(f.environ, "SSL_CERT_FILE="+caPath,
			"BACKFILL_INBOX_DEMO="+imapsURL(proxy.Addr()), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		out := f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "50")
		if s := proxy.Stats(); s.Resets == 0 {
			t.Fatalf("the proxy reset no connection (%+v): the test proves nothing\n%s", s, out)
		}
		if !strings.Contains(out, "🔁 IMAP connection failed (attempt 1): TLS handshake with") {
			t.Fatalf("the first connection's cut TLS handshake was not retried\n%s", out)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
			t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
		}
		if n := f.count(`SELECT count(*) FROM email_sync_status WHERE last_status = 'completed'`); n != 1 {
			t.Fatalf("email_sync_status does not say completed\n%s", out)
		}
		checkStoredOnce(f)
	})

	t.Run("STARTTLS resets", func(t *testing.T) {
		t.Parallel()
		proxy := faultproxy.Start(t, srv.Addr(), handshakeReset(faultproxy.EveryOther))
		f := newFixture(t)
		f.migrate()
		// imap:// to a loopback address upgrades with STARTTLS when the
		// server offers it, as Dovecot here does.
		u := url.URL{Scheme: "imap", User: url.User(user.Name), Host: proxy.Addr(), Path: "/INBOX"}
		f.environ = append(f.environ, "SSL_CERT_FILE="+caPath,
			"BACKFILL_INBOX_DEMO="+u.String(), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		out := f.mustRun(0, "--inbox", "demo", "--workers", "4", "--batch-size", "50")
		if !strings.Contains(out, "(STARTTLS)") {
			t.Fatalf("the run did not use STARTTLS\n%s", out)
		}
		if s := proxy.Stats(); s.Resets == 0 {
			t.Fatalf("the proxy reset no connection (%+v): the test proves nothing\n%s", s, out)
		}
		if !strings.Contains(out, "🔁 IMAP connection failed") || !strings.Contains(out, "STARTTLS with") {
			t.Fatalf("no retried STARTTLS handshake in the output\n%s", out)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n != unique {
			t.Fatalf("email_messages has %d rows, want %d\n%s", n, unique, out)
		}
		checkStoredOnce(f)
	})

	t.Run("wrong host", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.migrate()
		// The certificate is for 127.0.0.1; localhost is the same server
		// under a name the certificate does not carry.
		_, port, _ := net.SplitHostPort(srv.TLSAddr())
		f.environ = append(f.environ, "SSL_CERT_FILE="+caPath,
			"BACKFILL_INBOX_DEMO="+imapsURL(net.JoinHostPort("localhost", port)), "BACKFILL_INBOX_DEMO_PASSWORD="+user.Password)
		out := f.mustRun(2, "--inbox", "demo")
		f.wantLine(out, "🛑 BACKFILL ABORTED")
		if !strings.Contains(out, "TLS handshake with localhost:"+port) || !strings.Contains(out, "failed to verify certificate") || !strings.Contains(out, "wanted to match localhost") {
			t.Fatalf("the output does not say which certificate failed and why\n%s", out)
		}
		if strings.Contains(out, "🔁") {
			t.Fatalf("a certificate for another host was retried\n%s", out)
		}
		if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'tls_failed'`); n != 1 {
			t.Fatalf("error_logs has %d critical tls_failed rows, want 1\n%s", n, out)
		}
		if n := f.count(`SELECT count(*) FROM email_messages`); n != 0 {
			t.Fatalf("%d rows stored through a certificate that failed", n)
		}
	})
}

// runPipeline runs a backfill of cfg's mailbox into f's database as
// runBackfill does, holding the run lock, and returns the result, the
// output and the run's error (exit 2 when not nil).
func runPipeline(t *testing.T, f *fixture, cfg imapsrc.Config, workers int) (pipeline.Result, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := pgsink.Open(ctx, f.dbURL, workers+4)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	release, err := sink.Lock(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	opID := uuid.New()
	log := errlog.New(opID, "demo", sink, filepath.Join(f.dir, "errors.jsonl"))
	var buf bytes.Buffer
	out := newReporter(&buf, "text", false, false)
	res, err := pipeline.Run(ctx, pipeline.Config{Inbox: "demo", IMAP: cfg, OperationID: opID,
		Workers: workers, BatchSize: 50, RetryFor: time.Minute}, sink, log, out)
	out.finish(res, log.Summary(), opID, workers, err, false)
	return res, buf.String(), err
}

// TestSTARTTLSRefusedIsFatal: a server that will not start TLS is not
// asked again and again: the run stops at once, exit 2, and says so.
func TestSTARTTLSRefusedIsFatal(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // go-imap's test server speaks plaintext only
	f.imap.AppendGenerated(t, 83, 5)
	f.migrate()
	host, portStr, _ := net.SplitHostPort(f.imap.Addr())
	port, _ := strconv.Atoi(portStr)
	cfg := imapsrc.Config{Host: host, Port: port, Security: imapsrc.StartTLS, Username: f.imap.Username,
		Password: f.imap.Password, Mailbox: "INBOX"}
	_, out, err := runPipeline(t, f, cfg, 2)
	if code := exitCode(context.Background(), err); code != 2 || !strings.Contains(out, "🛑 BACKFILL ABORTED: STARTTLS with "+f.imap.Addr()) {
		t.Fatalf("exit %d (%v), want 2 saying STARTTLS failed\n%s", code, err, out)
	}
	if strings.Contains(out, "🔁") {
		t.Fatalf("a refused STARTTLS was retried\n%s", out)
	}
	if n := f.count(`SELECT count(*) FROM error_logs WHERE severity = 'critical' AND error_type = 'tls_failed'`); n != 1 {
		t.Fatalf("error_logs has %d critical tls_failed rows, want 1\n%s", n, out)
	}
}
