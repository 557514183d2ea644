package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// buildVersion says which build is running, for deploy logs and bug
// reports: the module version and the VCS revision and commit time Go
// stamps into a binary built from a git checkout.
type buildVersion struct {
	Version  string `json:"version"`            // module version; (devel) when unknown
	Revision string `json:"revision,omitempty"` // VCS revision
	Time     string `json:"time,omitempty"`     // the revision's commit time
	Modified bool   `json:"modified,omitempty"` // built with uncommitted changes
	Go       string `json:"go"`
}

// currentVersion reads the running binary's build info.
func currentVersion() buildVersion {
	info, _ := debug.ReadBuildInfo()
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version()}
	if info == nil {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		v.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line --version prints, as
// "v1.2.0 (revision 5305c73b…, 2026-12-02T06:06:08Z, go1.26.8)".
func (v buildVersion) String() string {
	var details []string
	if v.Revision != "" {
		rev := "revision " + v.Revision
		if v.Modified {
			rev += " with uncommitted changes"
		}
		details = append(details, rev)
	} else {
		details = append(details, "no VCS revision: built outside a git checkout or with -buildvcs=false")
	}
	if v.Time != "" {
		details = append(details, v.Time)
	}
	details = append(details, v.Go)
	return fmt.Sprintf("%s (%s)", v.Version, strings.Join(details, ", "))
}

func (a *appEnv) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the module version, VCS revision and commit time of this build",
		Action: func(*cli.Context) error {
			a.printVersion()
			return nil
		},
	}
}

// printVersion is what both `backfill version` and --version print.
func (a *appEnv) printVersion() {
	fmt.Fprintf(a.stdout, "backfill %s\n", currentVersion())
}

// withVersion prints the version instead of running action when --version
// is given. urfave/cli's own --version is one package-level flag, which
// races when the CLI runs more than once in a process (see helpFlag).
func (a *appEnv) withVersion(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Bool("version") {
			a.printVersion()
			return nil
		}
		return action(c)
	}
}

func versionFlag() cli.Flag {
	return &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
}
