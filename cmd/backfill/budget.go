package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pgsink"
	"github.com/myhibachi/backfill/pipeline"
)

// maxDownloadHelp says how to write --max-download; every error about it
// ends with it.
const maxDownloadHelp = "write SIZE/PERIOD, like 2500MB/24h, 1GB/1h or 500MiB/30m " +
	"(KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024; a bare number is bytes; " +
	"PERIOD is a duration like 24h, 90m or 1d), or none for no cap"

// sizeUnits are the units a --max-download size may carry, lowercased.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseMaxDownload reads a --max-download value. "0" and "none" (or
// "off") mean no cap: the zero Budget.
func parseMaxDownload(s string) (pipeline.Budget, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "0", "none", "off":
		return pipeline.Budget{}, nil
	}
	size, period, ok := strings.Cut(s, "/")
	if !ok {
		return pipeline.Budget{}, fmt.Errorf("%q has no /PERIOD: %s", s, maxDownloadHelp)
	}
	bytes, err := parseSize(size)
	if err != nil {
		return pipeline.Budget{}, fmt.Errorf("%q: %v: %s", s, err, maxDownloadHelp)
	}
	d, err := parsePeriod(period)
	if err != nil {
		return pipeline.Budget{}, fmt.Errorf("%q: %v: %s", s, err, maxDownloadHelp)
	}
	return pipeline.Budget{Bytes: bytes, Period: d}, nil
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q", s[i:])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q is not a number with a unit", s)
	}
	bytes := n * mult
	if bytes < 1 || bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(bytes), nil
}

// parsePeriod reads a Go duration, or a whole number of days (1d, 7d),
// which Go durations lack.
func parsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
		if err == nil && (n < 1 || n > 366) {
			err = errors.New("out of range")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil {
		return 0, fmt.Errorf("period %q is not a duration", s)
	}
	if d < time.Second {
		return 0, fmt.Errorf("period %q is under a second", s)
	}
	return d, nil
}

// maxDownloadVar is the variable that sets an inbox's default budget.
func maxDownloadVar(inbox string) string { return inboxVar(inbox) + "_MAX_DOWNLOAD" }

// resolveBudget picks a run's download budget: --max-download, else the
// inbox's BACKFILL_INBOX_<NAME>_MAX_DOWNLOAD, else the provider's preset
// (imapsrc.DownloadCap), which comes with a notice saying how to turn it
// off; "" when there is none.
func resolveBudget(flag string, flagSet bool, e env, inbox, host string) (b pipeline.Budget, notice string, err error) {
	if flagSet {
		b, err = parseMaxDownload(flag)
		if err != nil {
			return b, "", usageError("--max-download %v", err)
		}
		return b, "", nil
	}
	if v := e.get(maxDownloadVar(inbox)); v != "" {
		b, err = parseMaxDownload(v)
		if err != nil {
			return b, "", usageError("%s=%v", maxDownloadVar(inbox), err)
		}
		return b, "", nil
	}
	bytes, period := imapsrc.DownloadCap(host)
	if bytes == 0 {
		return pipeline.Budget{}, "", nil
	}
	b = pipeline.Budget{Bytes: bytes, Period: period}
	return b, fmt.Sprintf("--max-download %s/%s applied: %s lets an account download about that much over IMAP "+
		"(--max-download none, or %s, to change it)", formatBytes(bytes), formatPeriod(period), host, maxDownloadVar(inbox)), nil
}

// inboxBudget is resolveBudget for a resolved inbox: a registered inbox's
// --max-download stands where BACKFILL_INBOX_<NAME>_MAX_DOWNLOAD would,
// below the flag.
func inboxBudget(flag string, flagSet bool, e env, spec inboxSpec) (pipeline.Budget, string, error) {
	if flagSet || spec.MaxDownload == "" {
		return resolveBudget(flag, flagSet, e, spec.Name, spec.IMAP.Host)
	}
	b, err := parseMaxDownload(spec.MaxDownload)
	if err != nil {
		return b, "", usageError("inbox %s (registered in the database): --max-download %v", spec.Name, err)
	}
	return b, "", nil
}

// formatBytes writes a byte count in the decimal units --max-download
// reads, to the nearest tenth.
func formatBytes(n int64) string {
	switch {
	case n >= 1e12:
		return trimTenth(float64(n)/1e12) + "TB"
	case n >= 1e9:
		return trimTenth(float64(n)/1e9) + "GB"
	case n >= 1e6:
		return trimTenth(float64(n)/1e6) + "MB"
	case n >= 1e3:
		return trimTenth(float64(n)/1e3) + "KB"
	}
	return fmt.Sprintf("%dB", n)
}

func trimTenth(f float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0")
}

// formatPeriod writes a period as it would be given: 24h, 30m, 1h30m.
func formatPeriod(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// formatWait writes how long until the budget frees up: to the minute,
// or to the second under a minute.
func formatWait(d time.Duration) string {
	if d < time.Minute {
		return max(d, 0).Round(time.Second).String()
	}
	return formatPeriod(d.Round(time.Minute))
}

// inboxHost is the server name of an inbox's URL, "" when it has none
// that parses: status looks up a provider's preset by it without needing
// the inbox's password.
func inboxHost(e env, inbox string) string {
	raw := e.get(inboxVar(inbox))
	if b, ok := builtins[inbox]; ok && raw == "" {
		raw, _ = b.url(e)
	}
	cfg, err := imapsrc.ParseURL(raw, true)
	if err != nil {
		return ""
	}
	return cfg.Host
}

// statusBudget is where an inbox's download budget stands for `backfill
// status`, by the budget a run would get without --max-download: the
// inbox's variable, else its provider's preset. nil when it has none.
func statusBudget(ctx context.Context, s *pgsink.Sink, e env, inbox string) (*pgsink.BudgetStatus, error) {
	// A registered inbox's budget is the registry's, as a run's is.
	spec := inboxSpec{Name: inbox}
	source := maxDownloadVar(inbox)
	if reg, ok, err := pgsink.GetInbox(ctx, s.Pool(), inbox); err != nil {
		return nil, err
	} else if ok {
		spec.IMAP, _ = registeredConfig(e, reg, true) // a bad URL has no host: no preset
		spec.MaxDownload, source = reg.MaxDownload, "registered"
	} else {
		spec.IMAP.Host = inboxHost(e, inbox)
	}
	b, _, err := inboxBudget("", false, e, spec)
	if err != nil || b.Bytes == 0 {
		return nil, err
	}
	if source == "registered" && spec.MaxDownload == "" || source != "registered" && e.get(source) == "" {
		source = spec.IMAP.Host
	}
	ledger, err := s.Downloads(ctx, inbox, b.Period)
	if err != nil {
		return nil, err
	}
	st := &pgsink.BudgetStatus{Bytes: b.Bytes, Period: formatPeriod(b.Period), Source: source}
	for _, d := range ledger {
		st.Used += d.Bytes
	}
	st.Left = max(0, b.Bytes-st.Used)
	// Full: room comes back when the oldest downloads leave the window.
	rest := st.Used
	for _, d := range ledger {
		if rest < b.Bytes {
			break
		}
		rest -= d.Bytes
		if rest < b.Bytes {
			t := d.At.Add(b.Period)
			st.FreesAt = &t
		}
	}
	return st, nil
}
