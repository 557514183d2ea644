// Package imapsrc talks to the IMAP server: it dials and logs in, selects the
// mailbox read-only, lists UIDs and streams message bodies in UID batches.
package imapsrc

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Security is how a connection is protected.
type Security int

const (
	// ImplicitTLS is imaps://: TLS from the first byte (port 993).
	ImplicitTLS Security = iota
	// StartTLS is imap://: the connection must be upgraded before login.
	StartTLS
	// Plaintext is a connection that was not upgraded: what
	// StartTLSIfOffered falls back to with a server that offers no TLS.
	Plaintext
	// StartTLSIfOffered is imap:// to a loopback address, or with
	// --allow-plaintext: STARTTLS when the server offers it, plaintext
	// only when it does not. Conn.Security says which was used.
	StartTLSIfOffered
)

func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "TLS"
	case StartTLS:
		return "STARTTLS"
	case StartTLSIfOffered:
		return "STARTTLS if offered, else plaintext"
	default:
		return "plaintext"
	}
}

// Config says where a mailbox is and how to log in to it.
type Config struct {
	Host     string
	Port     int
	Security Security
	Username string
	Password string
	// Token, when set, logs in with OAuth2 (OAUTHBEARER or XOAUTH2,
	// whichever the server offers) instead of Password.
	Token   TokenSource
	Mailbox string
	// TLSConfig overrides the default (system roots, ServerName = Host).
	TLSConfig *tls.Config
	// RootCAs, when set, replaces the system roots in the default TLS
	// configuration (cmd/backfill adds SSL_CERT_FILE's CAs, from .env too).
	RootCAs *x509.CertPool
	// Timeout bounds dialling; zero means 30 s.
	Timeout time.Duration
	// Silence is how long the server may send nothing while an answer is
	// due before the connection is dropped as dead; zero means 60 s.
	Silence time.Duration
	// Changes, when set, gathers what the server says unprompted about the
	// selected mailbox (new mail, expunges, flag changes), as a follower
	// needs.
	Changes *Changes

	// ifOffered marks a StartTLS dial made for StartTLSIfOffered: the
	// greeting may say that STARTTLS is not offered (see peekGreeting).
	ifOffered bool
	// lastToken marks the dial after a kept token was refused: any refusal
	// now is final (see authenticateBearer).
	lastToken bool
	// tokenSince is when Dial began asking for a token: one obtained
	// since is new, one obtained before was kept (see authenticateBearer).
	tokenSince time.Time
}

// Addr is host:port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// String describes the mailbox without its password or token.
func (c Config) String() string {
	login := ""
	if c.Token != nil {
		login = ", OAuth2"
	}
	return fmt.Sprintf("%s@%s/%s (%s%s)", c.Username, c.Addr(), c.Mailbox, c.Security, login)
}

// ParseURL reads imaps://user@host:993/INBOX or imap://user@host:143/INBOX.
// An @ in the user name is percent-encoded. imap:// requires STARTTLS unless
// the host is a loopback address or allowPlaintext is set; then STARTTLS is
// still used whenever the server offers it. The password is not part of
// the URL; set Config.Password from the environment.
func ParseURL(raw string, allowPlaintext bool) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("bad IMAP URL: %w", err)
	}
	var cfg Config
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		cfg.Security, cfg.Port = ImplicitTLS, 993
	case "imap":
		cfg.Security, cfg.Port = StartTLS, 143
	default:
		return Config{}, fmt.Errorf("bad IMAP URL %q: scheme must be imaps:// or imap://", redact(u))
	}
	if u.User == nil || u.User.Username() == "" {
		return Config{}, fmt.Errorf("bad IMAP URL %q: no user name (imaps://user%%40example.com@host:993/INBOX)", redact(u))
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return Config{}, fmt.Errorf("bad IMAP URL %q: put the password in the _PASSWORD variable, not in the URL", redact(u))
	}
	cfg.Username = u.User.Username()
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return Config{}, fmt.Errorf("bad IMAP URL %q: no host", redact(u))
	}
	if p := u.Port(); p != "" {
		cfg.Port, err = strconv.Atoi(p)
		if err != nil || cfg.Port <= 0 || cfg.Port > 65535 {
			return Config{}, fmt.Errorf("bad IMAP URL %q: bad port %q", redact(u), p)
		}
	}
	cfg.Mailbox = strings.TrimPrefix(u.Path, "/")
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Security == StartTLS && (allowPlaintext || isLoopback(cfg.Host)) {
		cfg.Security = StartTLSIfOffered
	}
	return cfg, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact drops any password from a URL before it is shown.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}
