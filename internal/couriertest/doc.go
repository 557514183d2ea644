// Package couriertest runs a private Courier-IMAP 5.0 server (Debian 12's
// courier-imap, unpacked by scripts/servers.sh, not installed: it conflicts
// with dovecot-imapd) for end-to-end tests: one user with a Maildir in the
// test's directory, its own authdaemond and userdb, and plaintext IMAP on a
// free port of 127.0.0.1, all in a private mount namespace (see
// internal/debtree). Start skips in -short mode and where the machine cannot
// run it (not root, no mount namespaces), and fails when it does not come up.
//
// # How Courier differs from Dovecot and Cyrus
//
// Seen here on the same message, served by each of the three (issue 14):
//
//   - UIDVALIDITY on read-only sessions: a Maildir that no session has
//     opened read-write has no courierimapuiddb, and every EXAMINE numbers
//     the messages afresh under a new UIDVALIDITY (the time in seconds, so
//     sessions within one second share it). A client that only EXAMINEs, as
//     backfill does, sees the UIDVALIDITY change on every run until a mail
//     client SELECTs the mailbox once (Settle does that). Dovecot and Cyrus
//     keep UIDVALIDITY whatever the session.
//   - Line ends: Courier stores Maildir files as they are and adds a CR
//     before every LF when serving. Files with LF (what its own delivery
//     agents write; LoadMaildir) are served with CRLF; files written with
//     CRLF (LoadMaildirRaw) are served with CR CR LF, and RFC822.SIZE counts
//     the extra CRs. Dovecot serves files as stored; Cyrus stores CRLF only.
//   - BODYSTRUCTURE: all lowercase (type, subtype, parameter names and
//     values such as "utf-8", encoding, disposition), always quoted strings,
//     never literals. A header parameter with 8-bit bytes comes back RFC 2047
//     encoded ("=?utf-8?B?...?="), and RFC 2231 continuations are not joined
//     (name*0*, name*1* stay two parameters). A text part without
//     Content-Transfer-Encoding is reported "8bit", not "7bit", and parts
//     carry no body-language/location extension fields. Dovecot keeps the
//     case of the message and sends 8-bit values as literals; Cyrus
//     uppercases and sends RFC 2231 values as literals.
//   - APPEND: not needed here (files go straight into the Maildir).
//   - Speed: without gam_server (Debian's gamin package, a dependency of
//     courier-imap) every LOGIN and SELECT waits about a second for the
//     file-alteration monitor; scripts/servers.sh unpacks it. A refused
//     password is answered after about five seconds.
package couriertest
