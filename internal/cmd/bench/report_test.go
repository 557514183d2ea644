package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q; want %q", in, got, want)
		}
	}
}

// The closing block as cmd/backfill prints it.
const closingBlock = `📦 Processing batch 100/100 (100 emails): 100 synced, 0 skipped, 0 errors

📊 BACKFILL COMPLETE
   Total fetched: 10000
   Total synced:  9950 ✅
   Total skipped: 50 ⏭️
   Total errors:  0 ❌
   Elapsed time:  12.3s
   Success rate:  100.0%
   Downloaded:    10000 message bodies (813 emails/s)
   Operation ID:  0b6f1c8e-0000-0000-0000-000000000000
`

func TestParseSummary(t *testing.T) {
	got, err := parseSummary([]byte(closingBlock))
	if err != nil {
		t.Fatal(err)
	}
	want := backfillSummary{fetched: 10000, synced: 9950, skipped: 50, errors: 0, downloaded: 10000}
	if got != want {
		t.Errorf("parseSummary = %+v; want %+v", got, want)
	}
	if _, err := parseSummary([]byte("🛑 BACKFILL ABORTED: boom\n")); err == nil {
		t.Error("parseSummary of a block without totals: no error")
	}
}

func TestReportTable(t *testing.T) {
	floor := row{run: "floor", state: "cold", m: measurement{elapsed: 2 * time.Second, maxRSS: 8e6}, messages: 10000, bytes: 476e6, received: 480e6, load: 1.5,
		servers: serverTimes{dovecot: 1500 * time.Millisecond, postgres: 200 * time.Millisecond}}
	mbsync := row{run: "mbsync", state: "cold", m: measurement{elapsed: 10 * time.Second, maxRSS: 5e6}, messages: 10000, bytes: 476e6, received: -1, load: -1,
		servers: serverTimes{dovecot: -1, postgres: -1}}
	rerun := row{run: "re-run", state: "warm", m: measurement{elapsed: 500 * time.Millisecond, maxRSS: 20e6}, messages: 10000, received: 47.6e6, load: 0.25}
	tab := &table{profile: "link", shape: shapes()[1], corpus: corpus{seed: 1, messages: 10000, bytes: 476e6}, rows: []row{floor, mbsync, rerun}}
	tab.floor, tab.mbsync = &tab.rows[0], &tab.rows[1]
	rep := &report{tables: []*table{tab}}
	rep.targets = []target{{goal: "re-run ≤ 1 s per 10,000 messages", measured: "0.50 s", met: true, known: true}}
	var b bytes.Buffer
	if err := rep.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		": 10,000 messages (476.0 MB), cold server",
		"### link, attachments: 10,000 messages, 476.0 MB (47.6 KB average)",
		"| floor | cold | 2.00 | 5000 | 238.0 | 480.0 | 100.8% | 8 | 0.0 | 1.5 | 0.2 | 0.20× | 1.00× | 1.50 |  |",
		"| mbsync | cold | 10.00 | 1000 | 47.6 | – | – | 5 | 0.0 | – | – | 1.00× | 5.00× | – |  |",
		"| re-run | warm | 0.50 | 20000 | – | 47.6 | 10.0% | 20 | 0.0 | 0.0 | 0.0 | 0.05× | 0.25× | 0.25 |  |",
		"- re-run ≤ 1 s per 10,000 messages: 0.50 s, **met**",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("report lacks line %q:\n%s", want, b.String())
		}
	}
}

func TestAppendReportCreatesHeaderOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	for _, section := range []string{"## one\n", "## two\n"} {
		if err := appendReport(path, []byte(section)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), benchmarksHeader+"## one\n## two\n"; got != want {
		t.Errorf("BENCHMARKS.md:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseWorkers(t *testing.T) {
	for _, name := range []string{"BENCH_N", "BENCH_LINK_N", "BENCH_RUNS", "BENCH_WORKERS", "BENCH_DURABLE", "BENCH_SHAPES", "BENCH_PROFILES"} {
		t.Setenv(name, "")
	}
	tests := []struct {
		args    []string
		want    []int
		wantErr bool
	}{
		{args: nil, want: []int{4, 1, 2, 8}},
		{args: []string{"-workers", "8,2,4,2"}, want: []int{4, 2, 8}},
		{args: []string{"-workers", "1"}, want: []int{1}},
		{args: []string{"-workers", "0"}, wantErr: true},
		{args: []string{"-workers", "a"}, wantErr: true},
		{args: []string{"-n", "0"}, wantErr: true},
		{args: []string{"-runs", "0"}, wantErr: true},
		{args: []string{"-shapes", "huge"}, wantErr: true},
		{args: []string{"-profiles", "wan"}, wantErr: true},
	}
	for _, tt := range tests {
		var b benchCmd
		err := b.parse(tt.args, &bytes.Buffer{})
		if (err != nil) != tt.wantErr {
			t.Errorf("parse(%q): error %v", tt.args, err)
			continue
		}
		if err == nil && !slices.Equal(b.workers, tt.want) {
			t.Errorf("parse(%q): workers %v; want %v", tt.args, b.workers, tt.want)
		}
	}
}

func TestParseBenchN(t *testing.T) {
	t.Setenv("BENCH_N", "50_000")
	var b benchCmd
	if err := b.parse(nil, &bytes.Buffer{}); err != nil || b.n != 50000 {
		t.Errorf("BENCH_N=50_000: n %d, error %v", b.n, err)
	}
	t.Setenv("BENCH_N", "lots")
	if err := (&benchCmd{}).parse(nil, &bytes.Buffer{}); err == nil {
		t.Error("BENCH_N=lots: no error")
	}
}

func TestFileSystem(t *testing.T) {
	if got := fileSystem(t.TempDir()); got == "unknown" || !strings.Contains(got, " on ") {
		t.Errorf("fileSystem(a temporary directory) = %q; want \"TYPE on DEVICE\"", got)
	}
}

func TestPreviousRSSReadsTheLatestSectionOfThatSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := benchmarksHeader + `## 2026-11-29 03:00 UTC: 10,000 messages (480.0 MB)

| run | seconds | msgs/s | MB/s | peak RSS MB | CPU s | ×mbsync time | ×floor time | notes |
| backfill, empty database, ` + "`--workers 4`" + ` | 1.40 | 7147 | 343.1 | 48 | 1.2 | 0.69× | 3.63× | |

## 2026-11-29 04:00 UTC: 50,000 messages (2400.0 MB)

| backfill, empty database, ` + "`--workers 4`" + ` | 6.15 | 8125 | 389.0 | 124 | 4.6 | 0.51× | 3.12× | |

## 2026-11-29 05:00 UTC: 10,000 messages (480.0 MB)

| backfill, empty database, ` + "`--workers 8`" + ` | 1.13 | 8885 | 426.5 | 99 | 0.9 | 0.45× | 2.87× | |
| backfill, empty database, ` + "`--workers 4`" + ` | 1.16 | 8612 | 413.4 | 112 | 0.9 | 0.47× | 2.97× | |

## 2026-12-02 07:00 UTC: 2,000 messages (95.0 MB), cold server

| run | server | seconds | msgs/s | MB/s | MB received | % of mailbox | peak RSS MB | CPU s | ×mbsync time | ×floor time | load | notes |
| backfill ` + "`--workers 4`" + ` | cold | 1.00 | 2000 | 95.0 | 12.0 | 12.6% | 77 | 0.9 | 0.50× | 2.00× | 1.00 | |
| backfill ` + "`--workers 4`" + ` | cold | 1.00 | 2000 | 95.0 | 12.0 | 12.6% | 99 | 0.9 | 0.50× | 2.00× | 1.00 | |
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rss, when, ok := previousRSS(path, 10000)
	if !ok || rss != 112 || when != "2026-11-29 05:00 UTC" {
		t.Fatalf("10,000: got %v MB from %q (%v), want 112 MB from the 05:00 section", rss, when, ok)
	}
	if rss, _, ok := previousRSS(path, 50000); !ok || rss != 124 {
		t.Fatalf("50,000: got %v MB (%v), want 124", rss, ok)
	}
	if rss, _, ok := previousRSS(path, 2000); !ok || rss != 77 {
		t.Fatalf("2,000: got %v MB (%v), want 77 from the first table's row, by the RSS column's header", rss, ok)
	}
	if _, _, ok := previousRSS(path, 20000); ok {
		t.Fatal("found a section for a size that has none")
	}
}
