package dovecottest

import (
	"crypto/tls"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/myhibachi/backfill/internal/testca"
)

// TestTLS logs in over implicit TLS and over STARTTLS, verifying the
// server's certificate against the test CA: the setup the TLS fault tests
// stand on.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca, _ := testca.NewForTest(t)
	certPEM, keyPEM, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(t, []User{alice}, WithTLS(certPEM, keyPEM))
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	opts := &imapclient.Options{TLSConfig: cfg}
	for name, dial := range map[string]func() (*imapclient.Client, error){
		"implicit": func() (*imapclient.Client, error) { return imapclient.DialTLS(s.TLSAddr(), opts) },
		"STARTTLS": func() (*imapclient.Client, error) { return imapclient.DialStartTLS(s.Addr(), opts) },
	} {
		c, err := dial()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Login(alice.Name, alice.Password).Wait(); err != nil {
			t.Fatalf("%s: login: %v", name, err)
		}
		c.Close()
	}
	// A certificate for another host fails verification.
	wrong := &imapclient.Options{TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "imap.example.com"}}
	if c, err := imapclient.DialTLS(s.TLSAddr(), wrong); err == nil {
		c.Close()
		t.Fatal("a certificate for 127.0.0.1 was accepted for imap.example.com")
	}
}
