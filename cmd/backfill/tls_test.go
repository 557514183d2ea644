package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/imaptest"
	"github.com/myhibachi/backfill/internal/pgtest"
)

// TestStartTLSOnLoopback: imap:// to a loopback address uses STARTTLS
// whenever the server offers it, with the certificate verified (a private
// CA is trusted through SSL_CERT_FILE, as the README says), and plaintext
// only with a server that offers no TLS. The start line says which, and the
// server confirms it. The binary runs as a user runs it, since Go reads
// SSL_CERT_FILE once per process.
func TestStartTLSOnLoopback(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	serverTLS, caFile := testCA(t)

	type want struct {
		code     int
		line     string // the output must contain it
		tls      bool   // every login was over TLS (else: none was)
		noLogins bool
	}
	for _, tt := range []struct {
		name     string
		offerTLS bool
		trustCA  bool
		password string // "" for the right one
		want     want
	}{
		{name: "offered and trusted", offerTLS: true, trustCA: true,
			want: want{code: 0, line: "(STARTTLS))", tls: true}},
		{name: "offered, certificate untrusted", offerTLS: true,
			want: want{code: 2, line: "tls: failed to verify certificate: x509: certificate signed by unknown authority", noLogins: true}},
		{name: "offered, wrong password", offerTLS: true, trustCA: true, password: "wrong",
			want: want{code: 2, line: "refused", noLogins: true}},
		{name: "not offered", trustCA: true,
			want: want{code: 0, line: "(plaintext))"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []imaptest.Option
			if tt.offerTLS {
				opts = append(opts, imaptest.WithStartTLS(serverTLS))
			}
			f := newFixture(t, opts...)
			f.imap.AppendGenerated(t, 11, 30)
			f.migrate()
			environ := f.environ
			if tt.password != "" {
				environ = append(environ, "BACKFILL_INBOX_DEMO_PASSWORD="+tt.password)
			}
			if tt.trustCA {
				environ = append(environ, "SSL_CERT_FILE="+caFile)
			}
			code, out := execBinary(t, bin, f.dir, environ, "--inbox", "demo", "--workers", "3", "--batch-size", "10")
			if code != tt.want.code || !strings.Contains(out, tt.want.line) {
				t.Fatalf("exit %d, want %d with %q in the output:\n%s", code, tt.want.code, tt.want.line, out)
			}
			if tt.want.code == 0 {
				f.wantLine(out, "📡 Connecting to IMAP server... (support@example.com@"+f.imap.Addr()+"/INBOX "+tt.want.line)
			}
			logins := f.imap.Logins()
			overTLS, plainTries := f.imap.LoginsOverTLS()
			// One connection per login, or the one refused: never a second
			// dial to find out whether STARTTLS is offered.
			if conns := f.imap.Connections(); conns != max(logins, 1) {
				t.Errorf("%d connections for %d logins", conns, logins)
			}
			switch {
			case tt.want.noLogins && logins != 0:
				t.Errorf("the server accepted %d logins, want none", logins)
			case tt.offerTLS && plainTries != 0:
				t.Errorf("a server offering STARTTLS saw %d logins tried in plaintext", plainTries)
			case tt.want.tls && (overTLS != logins || logins < 3):
				t.Errorf("%d of %d logins were over TLS, want all of at least 3", overTLS, logins)
			case !tt.offerTLS && (overTLS != 0 || plainTries != logins || logins < 3):
				t.Errorf("logins: %d over TLS, %d tried in plaintext, %d accepted; want all of at least 3 in plaintext", overTLS, plainTries, logins)
			}
		})
	}
}

// TestUntrustedCertificateOverImaps: a server whose certificate a private
// CA signed fails with the error the README quotes, exit 2, until
// SSL_CERT_FILE names that CA.
func TestUntrustedCertificateOverImaps(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	serverTLS, caFile := testCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Handshake, then hang up: only the certificate matters here.
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	environ := []string{"DATABASE_URL=" + pgtest.NewDatabase(t),
		"BACKFILL_INBOX_CORP=imaps://u@" + ln.Addr().String() + "/INBOX", "BACKFILL_INBOX_CORP_PASSWORD=p"}
	dir := t.TempDir()
	if code, out := execBinary(t, bin, dir, environ, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	want := "🛑 BACKFILL ABORTED: TLS handshake with " + ln.Addr().String() +
		": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	code, out := execBinary(t, bin, dir, environ, "--inbox", "corp", "--retry-for", "1s")
	if code != 2 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 2 and %q:\n%s", code, want, out)
	}
	// Trusted, the handshake works and the run gets as far as the greeting.
	code, out = execBinary(t, bin, dir, append(environ, "SSL_CERT_FILE="+caFile), "--inbox", "corp", "--retry-for", "1s")
	if code != 2 || strings.Contains(out, "x509") || !strings.Contains(out, "greeting from") {
		t.Fatalf("with SSL_CERT_FILE: exit %d, want 2 for the missing greeting, not a certificate error:\n%s", code, out)
	}
}

// testCA makes a private CA and a certificate for 127.0.0.1 it signs, as a
// company running its own mail server has. It returns the server's TLS
// configuration and the CA certificate's PEM file, for SSL_CERT_FILE.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backfill test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey := newKey()
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "company-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}, MinVersion: tls.VersionTLS12}
	return cfg, caFile
}
