package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseFleetLink(t *testing.T) {
	var f fleetCmd
	if err := f.parse(nil, &bytes.Buffer{}); err != nil || f.shaped {
		t.Fatalf("parse(nil): shaped %v, error %v; want loopback", f.shaped, err)
	}
	f = fleetCmd{}
	if err := f.parse([]string{"-link", "-link-total", "20"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if want := (link{perConn: 5e6, total: 20e6}); !f.shaped || f.delay != 25*time.Millisecond || f.link != want {
		t.Errorf("-link -link-total 20: shaped %v, delay %v, link %+v; want true, 25ms, %+v", f.shaped, f.delay, f.link, want)
	}
	for _, args := range [][]string{{"-link", "-delay", "0"}, {"-link", "-link-rate", "0"}, {"-link-total", "-1"}} {
		if err := (&fleetCmd{}).parse(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parse(%q): no error", args)
		}
	}
}

// The report of a run over the link says so, in its heading, its setup and
// each row's bytes carried.
func TestFleetReportLink(t *testing.T) {
	f := &fleetCmd{inboxes: 2, messages: 10, runs: 1, loop: true, shaped: true, delay: 25 * time.Millisecond,
		link: link{perConn: 5e6, total: 12.5e6}}
	f.corpus.messages, f.corpus.distinct, f.corpus.bytes = 20, 20, 1e6
	r := &fleetReport{f: f, date: time.Now(), rows: []row{{run: "shell loop", state: "cold", m: measurement{elapsed: time.Second},
		messages: 20, bytes: 1e6, received: 1_234_567, load: -1, servers: serverTimes{dovecot: -1, postgres: -1}, note: "checked"}}}
	var out bytes.Buffer
	r.write(&out)
	for _, want := range []string{"over the capped, delayed link", "25ms each way (50ms round trip), 5.0 MB/s per connection and direction, 12.5 MB/s in all",
		"| 1.2 MB through the link; checked |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "no link shaping") {
		t.Errorf("report over the link says no link shaping:\n%s", out.String())
	}
}
