package dovecottest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// configTemplate is a complete dovecot.conf: nothing is read from /etc/dovecot.
// Every setting here is needed to run a private instance as root: imap-login
// refuses to run as root (dovenull), mail access as uid 0 is refused (mail),
// and nothing may reach beyond the temporary folder or loopback.
var configTemplate = template.Must(template.New("dovecot.conf").Parse(`# Written by dovecottest; overwritten at each start.
base_dir = {{.BaseDir}}
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
instance_name = dovecottest

protocols = imap
listen = 127.0.0.1
{{if .TLS}}ssl = yes
ssl_cert = <{{.Dir}}/server.crt
ssl_key = <{{.Dir}}/server.key
{{else}}ssl = no
{{end}}disable_plaintext_auth = no
auth_mechanisms = plain login{{if .OAuth2}} oauthbearer xoauth2{{end}}
# Refuse a wrong password at once, not after the usual 2 seconds.
auth_failure_delay = 0

# imap-login refuses to run as root, and mail is refused to uid/gid 0.
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = {{.MailUID}}
mail_gid = {{.MailGID}}
first_valid_uid = {{.MailUID}}
first_valid_gid = {{.MailGID}}

mail_location = maildir:~/Maildir
# Test mail is disposable: skip fsync.
mail_fsync = never

namespace inbox {
  inbox = yes
{{.Namespace}}}

{{if .OAuth2}}# Tokens are checked by the test's introspection endpoint; passwords
# still work through the passwd-file passdb below.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {{.Dir}}/dovecot-oauth2.conf.ext
}
{{end}}passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.Dir}}/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u {{.Dir}}/passwd
}

service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
{{if .TLS}}    address = 127.0.0.1
    port = {{.TLSPort}}
{{else}}    port = 0
{{end}}  }
}

protocol imap {
  mail_max_userip_connections = {{.MaxUserIPConnections}}
}
{{.Extra}}`))

func (s *Server) writeConfig() error {
	if err := os.MkdirAll(filepath.Join(s.dir, "state"), 0o755); err != nil {
		return err
	}
	oauth2 := ""
	if s.set.introspectionURL != "" {
		oauth2 = "yes"
		// Each token is sent to the endpoint, which answers whether it is
		// active and whose it is (RFC 7662); nothing is cached.
		ext := "introspection_mode = post\n" +
			"introspection_url = " + s.set.introspectionURL + "\n" +
			"force_introspection = yes\n" +
			"username_attribute = username\n" +
			"active_attribute = active\n" +
			"active_value = true\n"
		if err := os.WriteFile(filepath.Join(s.dir, "dovecot-oauth2.conf.ext"), []byte(ext), 0o644); err != nil {
			return err
		}
	}
	tlsOn := ""
	if s.set.certPEM != nil {
		tlsOn = "yes"
		if err := os.WriteFile(filepath.Join(s.dir, "server.crt"), s.set.certPEM, 0o644); err != nil {
			return err
		}
		// Dovecot's config process reads the key as root.
		if err := os.WriteFile(filepath.Join(s.dir, "server.key"), s.set.keyPEM, 0o600); err != nil {
			return err
		}
	}
	var ns strings.Builder
	if len(s.set.folders) > 0 {
		ns.WriteString("  separator = /\n")
	}
	for _, f := range s.set.folders {
		fmt.Fprintf(&ns, "  mailbox %s {\n    auto = create\n", strconv.Quote(f.Name))
		if f.SpecialUse != "" {
			fmt.Fprintf(&ns, "    special_use = %s\n", f.SpecialUse)
		}
		ns.WriteString("  }\n")
	}
	f, err := os.Create(s.conf)
	if err != nil {
		return err
	}
	err = configTemplate.Execute(f, map[string]string{
		"BaseDir":              s.baseDir,
		"Dir":                  s.dir,
		"MailUID":              strconv.Itoa(s.mailUID),
		"MailGID":              strconv.Itoa(s.mailGID),
		"Port":                 strconv.Itoa(s.port),
		"MaxUserIPConnections": strconv.Itoa(s.set.maxUserIPConnections),
		"Extra":                s.set.extra,
		"OAuth2":               oauth2,
		"TLS":                  tlsOn,
		"TLSPort":              strconv.Itoa(s.tlsPort),
		"Namespace":            ns.String(),
	})
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}
