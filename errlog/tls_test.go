package errlog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestTLSHandshake: a handshake that met a network fault is worth another
// try; one that TLS itself refused is not.
func TestTLSHandshake(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("TLS handshake with 127.0.0.1:993: %w", err) }
	tests := []struct {
		name string
		err  error
		want Category
	}{
		{"reset", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), Transient},
		{"EOF", wrap(io.EOF), Transient},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), Transient},
		{"timeout", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), Transient},
		{"closed", wrap(net.ErrClosed), Transient},
		{"unknown authority", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), Critical},
		{"wrong host", wrap(x509.HostnameError{Host: "imap.example.com", Certificate: &x509.Certificate{}}), Critical},
		{"expired", wrap(x509.CertificateInvalidError{Reason: x509.Expired}), Critical},
		{"alert from the server", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}), Critical},
		{"plaintext port", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), Critical},
		{"unsupported version", wrap(errors.New("tls: server selected unsupported protocol version 301")), Critical},
	}
	for _, tt := range tests {
		if got := TLSHandshake(tt.err); got != tt.want {
			t.Errorf("%s: TLSHandshake = %s, want %s", tt.name, got, tt.want)
		}
	}
	// Outside a handshake the same alert stops the run too.
	if got := Classify(wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")})); got != Critical {
		t.Errorf("Classify(TLS alert) = %s, want critical", got)
	}
}
