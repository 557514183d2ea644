package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/myhibachi/backfill/internal/dovecottest"
)

// BenchmarkWatchLatency times how long a message takes from `doveadm save`
// to a row a backend can read, while `backfill watch` follows a Dovecot
// INBOX with IDLE: warm server, loopback, the mailbox already backfilled.
// It reports the median and 95th percentile from the start of the save
// (doveadm's own start-up included) and from its end. BENCH_WATCH_N sets
// the mailbox size (default 2,000): a new message's sync lists only the
// UIDs above those already handled, so the figures should not grow with it.
func BenchmarkWatchLatency(b *testing.B) {
	n := envInt("BENCH_WATCH_N", 2000)
	w := newDovecotWatch(b, n, watchSetup{})
	p := w.start()
	p.waitLines("👀 demo/INBOX: following", 1)
	b.ResetTimer()
	fromStart, fromEnd := deliverAndWait(b, w, "INBOX")
	b.StopTimer()
	b.ReportMetric(pct(fromStart, 50), "ms-save-to-row-p50")
	b.ReportMetric(pct(fromStart, 95), "ms-save-to-row-p95")
	b.ReportMetric(pct(fromEnd, 50), "ms-saved-to-row-p50")
	b.ReportMetric(pct(fromEnd, 95), "ms-saved-to-row-p95")
	b.ReportMetric(float64(n), "mailbox-msgs")
	p.stop(syscall.SIGTERM)
}

// BenchmarkWatchSoak compresses hours of following into BENCH_SOAK (default
// 60s): watch polls a Dovecot without IDLE every 20 ms (a day of 60-second
// polls is 1,440) while a message arrives every second (unless
// BENCH_SOAK_MAIL=0), and the process's
// resident memory is read from /proc as it goes. It reports RSS after the
// first tenth of the time and at the end: flat memory keeps them close.
// Polls are counted as Dovecot's logins: each poll's sync logs in.
func BenchmarkWatchSoak(b *testing.B) {
	d, err := time.ParseDuration(envString("BENCH_SOAK", "60s"))
	if err != nil {
		b.Fatal(err)
	}
	w := newDovecotWatch(b, envInt("BENCH_WATCH_N", 2000), watchSetup{dovecot: []dovecottest.Option{
		dovecottest.WithConfig("imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS\n")}})
	// BENCH_SOAK_MAIL=0 delivers nothing: the mailbox, and so each poll's
	// work, stays the same size, and any growth of memory is the process's.
	deliver := envString("BENCH_SOAK_MAIL", "1") != "0"
	const poll = 20 * time.Millisecond
	p := w.start("--poll", poll.String())
	p.waitLines("👀 demo/INBOX: following (polling)", 1)
	pid := p.cmd.Process.Pid
	b.ResetTimer()
	for range b.N {
		loginsBefore := w.logins()
		start := time.Now()
		var early, peakEarly int
		delivered := 0
		for time.Since(start) < d {
			if deliver {
				if err := w.srv.Deliver(w.user, "INBOX", liveMail(fmt.Sprintf("soak-%d", delivered))); err != nil {
					b.Fatal(err)
				}
				delivered++
			}
			time.Sleep(time.Second)
			if early == 0 && time.Since(start) > d/10 {
				early, peakEarly = rssKB(b, pid)
			}
		}
		late, peak := rssKB(b, pid)
		w.eventually("every soak message stored", func() bool {
			return w.count(`SELECT count(*) FROM email_messages WHERE message_id LIKE 'soak-%'`) == delivered
		})
		// Each poll's sync logs in once (more when it fetches new mail).
		polls := w.logins() - loginsBefore
		b.ReportMetric(float64(early)/1024, "MB-rss-at-10%")
		b.ReportMetric(float64(late)/1024, "MB-rss-at-end")
		b.ReportMetric(float64(peakEarly)/1024, "MB-peak-at-10%")
		b.ReportMetric(float64(peak)/1024, "MB-peak-at-end")
		b.ReportMetric(float64(polls), "polls")
		b.ReportMetric(float64(polls)/60, "hours-of-60s-polls")
	}
	b.StopTimer()
	p.stop(syscall.SIGTERM)
}

// logins counts the IMAP logins in Dovecot's log.
func (w *dovecotWatch) logins() int {
	data, err := os.ReadFile(w.srv.LogFile())
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Count(string(data), "Login: user=<")
}

// rssKB reads a process's resident and peak resident memory, in KiB.
func rssKB(tb testing.TB, pid int) (rss, peak int) {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		}
	}
	return rss, peak
}

// pct is the p-th percentile of ds, in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100].Microseconds()) / 1000
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// deliverAndWait delivers b.N messages into folder one after another, each
// once the one before is a row, and returns how long each took to become
// one, from the start and from the end of its delivery.
func deliverAndWait(b *testing.B, w *dovecotWatch, folder string) (fromStart, fromEnd []time.Duration) {
	ctx := context.Background()
	for i := range b.N {
		id := fmt.Sprintf("latency-%d", i)
		start := time.Now()
		if err := w.srv.Deliver(w.user, folder, liveMail(id)); err != nil {
			b.Fatal(err)
		}
		saved := time.Now()
		for {
			var found bool
			if err := w.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM email_messages WHERE inbox = 'demo'
				AND md5(message_id) = md5($1))`, id+"@example.com").Scan(&found); err != nil {
				b.Fatal(err)
			}
			if found {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("message %s not stored within a minute", id)
			}
			time.Sleep(2 * time.Millisecond)
		}
		now := time.Now()
		fromStart, fromEnd = append(fromStart, now.Sub(start)), append(fromEnd, now.Sub(saved))
	}
	return fromStart, fromEnd
}
