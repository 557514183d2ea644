package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/myhibachi/backfill/imapsrc"
)

func TestResolveInbox(t *testing.T) {
	tests := []struct {
		name       string
		environ    []string
		dotenv     string
		inbox      string
		wantUser   string
		wantHost   string
		wantPass   string
		wantErrHas string
	}{
		{name: "seed customer_support", environ: []string{"SMTP_PASSWORD=s3cret"}, inbox: "customer_support",
			wantUser: "cs@myhibachichef.com", wantHost: "imap.ionos.com", wantPass: "s3cret"},
		{name: "seed payments", environ: []string{"PAYMENT_EMAIL_ADDRESS=myhibachichef@gmail.com", "PAYMENT_EMAIL_PASSWORD=app"},
			inbox: "payments", wantUser: "myhibachichef@gmail.com", wantHost: "imap.gmail.com", wantPass: "app"},
		{name: "payments without address", environ: []string{"PAYMENT_EMAIL_PASSWORD=app"}, inbox: "payments",
			wantErrHas: "PAYMENT_EMAIL_ADDRESS is not set"},
		{name: "missing password", inbox: "customer_support", wantErrHas: "set SMTP_PASSWORD"},
		{name: "custom inbox", environ: []string{"BACKFILL_INBOX_SALES=imaps://s%40x.com@mail.x.com:993/INBOX", "BACKFILL_INBOX_SALES_PASSWORD=p"},
			inbox: "sales", wantUser: "s@x.com", wantHost: "mail.x.com", wantPass: "p"},
		{name: "custom overrides builtin", environ: []string{"BACKFILL_INBOX_CUSTOMER_SUPPORT=imaps://o%40x.com@other.x.com/INBOX", "BACKFILL_INBOX_CUSTOMER_SUPPORT_PASSWORD=q"},
			inbox: "customer_support", wantUser: "o@x.com", wantHost: "other.x.com", wantPass: "q"},
		{name: "unknown inbox", inbox: "nope", wantErrHas: `unknown inbox "nope": set BACKFILL_INBOX_NOPE=`},
		{name: "bad url", environ: []string{"BACKFILL_INBOX_X=ftp://a@b/", "BACKFILL_INBOX_X_PASSWORD=p"}, inbox: "x",
			wantErrHas: "scheme must be"},
		{name: "dotenv", dotenv: "SMTP_PASSWORD=fromfile\n", inbox: "customer_support", wantPass: "fromfile",
			wantUser: "cs@myhibachichef.com", wantHost: "imap.ionos.com"},
		{name: "real env wins over dotenv", environ: []string{"SMTP_PASSWORD=real"}, dotenv: "SMTP_PASSWORD=fromfile\n",
			inbox: "customer_support", wantPass: "real", wantUser: "cs@myhibachichef.com", wantHost: "imap.ionos.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.dotenv != "" {
				if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(tt.dotenv), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e, err := loadEnv(tt.environ, dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := resolveInbox(e, tt.inbox, false)
			if tt.wantErrHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrHas) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErrHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != tt.wantUser || cfg.Host != tt.wantHost || cfg.Password != tt.wantPass || cfg.Security != imapsrc.ImplicitTLS {
				t.Fatalf("got %+v (password %q), want user %s host %s password %s", cfg, cfg.Password, tt.wantUser, tt.wantHost, tt.wantPass)
			}
		})
	}
}

// BACKFILL_INBOX_<NAME>_FOLDERS is an inbox's folder list, not an inbox of
// its own, unless it holds a URL: then it is inbox <name>_folders's.
func TestInboxFoldersVariable(t *testing.T) {
	e, err := loadEnv([]string{
		"BACKFILL_INBOX_SALES=imaps://s%40x.com@mail.x.com:993/INBOX", "BACKFILL_INBOX_SALES_FOLDERS= INBOX, sent ,Projekte/Über,",
		"BACKFILL_INBOX_X_FOLDERS=imaps://x%40x.com@mail.x.com:993/INBOX",
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names := inboxNames(e)
	if !slices.Contains(names, "sales") || slices.Contains(names, "sales_folders") || !slices.Contains(names, "x_folders") {
		t.Errorf("inboxNames = %v, want sales and x_folders, not sales_folders", names)
	}
	if got := inboxFolders(e, "sales"); !slices.Equal(got, []string{"INBOX", "sent", "Projekte/Über"}) {
		t.Errorf("sales's folders = %q", got)
	}
	if got := inboxFolders(e, "x"); got != nil {
		t.Errorf("x's folders = %q, want none: the variable is inbox x_folders's URL", got)
	}
}
