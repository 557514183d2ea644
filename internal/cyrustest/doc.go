// Package cyrustest runs a private Cyrus IMAP 3.6 server (Debian 12's
// cyrus-imapd, unpacked by scripts/servers.sh, not installed: it conflicts
// with dovecot-imapd) for end-to-end tests: one user whose mail Cyrus keeps
// in its own spool in the test's directory, SASL passwords in a private
// sasldb, and plaintext IMAP on a free port of 127.0.0.1, all in a private
// mount namespace (see internal/debtree). Start skips in -short mode and
// where the machine cannot run it (not root, no mount namespaces), and fails
// when it does not come up.
//
// # How Cyrus differs from Dovecot and Courier
//
// Seen here on the same message, served by each of the three (issue 14):
//
//   - APPEND is strict. Cyrus refuses a message with bare LF line ends ("NO
//     Message contains bare newlines"), with a NUL byte, or with a header
//     line that is not a field ("NO Message contains invalid header"), and
//     replaces 8-bit bytes in header fields with 'X' (munge8bit: "café"
//     becomes "cafXX"). It takes bare CR and CR CR LF as they are. Load turns
//     bare LF into CRLF, as LMTP delivery does, and lists what Cyrus still
//     refuses (3 of the 90 real-world messages of enmime and CPython).
//     Dovecot and Courier are loaded as Maildir files and take anything.
//   - BODYSTRUCTURE: all uppercase (type, subtype, parameter names,
//     encoding, disposition); parameter values with 8-bit bytes or RFC 2231
//     syntax ('...'%XX) are sent as literals ({32}...), and RFC 2231
//     continuations are joined into one name* parameter. Dovecot keeps the
//     message's case, joins continuations and sends only 8-bit values as
//     literals; Courier lowercases and never sends literals.
//   - Line ends: Cyrus stores and serves CRLF, so what it serves is what
//     was appended (after Load's LF to CRLF).
//   - UIDVALIDITY is set when the mailbox is created and kept, read-only
//     sessions included (unlike Courier's unopened Maildirs).
//   - The mailbox must exist: Start creates user/NAME as the administrator
//     cyrus, as cyradm would. Logins are user@domain (virtdomains: userid).
//     A refused password is answered after about five seconds.
package cyrustest
