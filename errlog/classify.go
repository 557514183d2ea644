// Package errlog classifies failures, records them in error_logs (or a local
// JSON-lines file when the database cannot take them) and summarises a run's
// errors for its closing block.
package errlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5/pgconn"
)

// Category is how a failure is handled: retried, logged and skipped, or fatal.
type Category string

const (
	// Transient failures (network, timeouts, BYE, lost database connections,
	// serialization failures) are retried with backoff.
	Transient Category = "transient"
	// Message failures concern one message: it is logged and the run goes on.
	Message Category = "message"
	// Critical failures stop the run.
	Critical Category = "critical"
)

// Severity is the error_logs.severity of an entry.
type Severity string

const (
	SeverityWarning  Severity = "warning"
	SeverityError    Severity = "error"
	SeverityCritical Severity = "critical"
)

// CriticalError marks a failure that must stop the run whatever its cause
// (schema missing, login refused, ...).
type CriticalError struct {
	Type string
	Err  error
}

func (e *CriticalError) Error() string { return e.Err.Error() }
func (e *CriticalError) Unwrap() error { return e.Err }

// Classify decides a failure's category from its type, IMAP response code or
// SQLSTATE, never from its text (throttling answers aside: see Throttled).
// Unknown errors are transient: retrying a bounded number of times is
// cheaper than losing a run to a hiccup. Throttling answers are transient.
func Classify(err error) Category {
	if err == nil {
		return ""
	}
	var ce *CriticalError
	if errors.As(err, &ce) {
		return Critical
	}
	if errors.Is(err, context.Canceled) {
		return Critical
	}
	if _, ok := Throttled(err); ok {
		return Transient
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return classifyIMAP(imapErr)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifySQLState(pgErr.Code)
	}
	if tlsRefused(err) {
		return Critical
	}
	// pgconn timeouts, network faults and errors of unknown kind alike.
	return Transient
}

// TLSHandshake classifies a failed TLS handshake (implicit TLS or
// STARTTLS). Only a fault of the network under it is transient: a reset, an
// EOF, a timeout, a closed socket. Everything else is the TLS exchange
// itself failing (a certificate that fails verification, an alert either
// side sent, a protocol version or cipher the client will not use, TLS
// spoken to a port that does not speak it), which a retry meets again:
// critical. crypto/tls gives most of those no type of their own, hence
// this way round.
func TLSHandshake(err error) Category {
	if err == nil {
		return ""
	}
	if !tlsRefused(err) && (networkFault(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return Transient
	}
	return Critical
}

// networkFault reports an error of the connection under a protocol.
func networkFault(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// tlsRefused reports a TLS failure that retrying cannot mend: a certificate
// that fails verification, an alert from the server (it refuses our
// protocol versions or ciphers), or TLS spoken to a port that does not
// speak it. Resets, EOFs and timeouts during a handshake are not among
// them: they are network faults, transient like any other.
func tlsRefused(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	var alertErr tls.AlertError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &alertErr) || errors.As(err, &recordErr) {
		return true
	}
	// crypto/tls reports an alert as a *net.OpError whose Op says which
	// side sent it; its alert type is unexported.
	var opErr *net.OpError
	return errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error")
}

func classifyIMAP(err *imap.Error) Category {
	switch err.Code {
	case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed,
		imap.ResponseCodeExpired, imap.ResponseCodeNonExistent, imap.ResponseCodeNoPerm,
		imap.ResponseCodePrivacyRequired, imap.ResponseCodeContactAdmin:
		return Critical
	case imap.ResponseCodeLimit, imap.ResponseCodeUnavailable, imap.ResponseCodeInUse,
		imap.ResponseCodeServerBug:
		return Transient
	}
	if err.Type == imap.StatusResponseTypeBye {
		return Transient
	}
	// A NO without a code on LOGIN or SELECT is how older servers refuse a
	// password or a mailbox; the callers wrap those in CriticalError.
	return Transient
}

func classifySQLState(code string) Category {
	switch {
	case code == "40001", code == "40P01", code == "55P03", code == "57P01", code == "57P02",
		code == "57P03", code == "53300", len(code) == 5 && code[:2] == "08":
		return Transient
	case code == "42P01", code == "42703", code == "28P01", code == "28000", code == "3D000":
		return Critical // schema missing, bad credentials, no such database
	case len(code) == 5 && (code[:2] == "22" || code[:2] == "23"):
		return Message // data exceptions and constraint violations concern a row
	}
	return Critical
}
