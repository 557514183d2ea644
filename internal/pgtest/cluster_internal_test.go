package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/myhibachi/backfill/internal/testserver"
)

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13", "17"} {
		dir := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if v == "17" {
			continue // an incomplete installation: no programs
		}
		for _, prog := range []string{"initdb", "pg_ctl"} {
			if err := os.WriteFile(filepath.Join(dir, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", t.TempDir()) // nothing in PATH

	got, err := findBinDirIn(filepath.Join(root, "*", "bin"))
	if want := filepath.Join(root, "15", "bin"); err != nil || got != want {
		t.Errorf("findBinDirIn = %q, %v; want the newest complete version, %q", got, err, want)
	}

	_, err = findBinDirIn(filepath.Join(t.TempDir(), "*", "bin"))
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Errorf("without PostgreSQL: %v; want ErrNoBinaries saying what to install", err)
	}
}

func TestReapOrphans(t *testing.T) {
	t.Parallel()
	dir, err := newClusterDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := Start(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	// Hand the cluster to a process that has ended, as a test binary killed
	// by a timeout would.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	reapOrphans()

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("orphaned cluster directory still there: %v", err)
	}
	if !testserver.PortFree(c.Port()) {
		t.Errorf("orphaned cluster still listens on port %d", c.Port())
	}
}
