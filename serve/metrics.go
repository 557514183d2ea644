// Package serve is what `backfill watch --listen` serves, read-only: health,
// Prometheus metrics and the guide's two verification endpoints.
package serve

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/myhibachi/backfill/imapsrc"
	"github.com/myhibachi/backfill/pipeline"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what a watching process does, per inbox (and folder where
// it matters). All methods are safe for concurrent use.
type Metrics struct {
	stored, skipped, failed *prometheus.CounterVec // {inbox, folder}
	retries                 *prometheus.CounterVec // {inbox}
	bytes                   *prometheus.CounterVec // {inbox}
	errors                  *prometheus.CounterVec // {inbox, class}
	connected               *prometheus.GaugeVec   // {inbox, folder}
	state                   *folderState
}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		stored:  counter("backfill_messages_stored_total", "Messages stored as new rows.", "inbox", "folder"),
		skipped: counter("backfill_messages_skipped_total", "Messages skipped because a row with their Message-ID was stored already.", "inbox", "folder"),
		failed:  counter("backfill_messages_failed_total", "Messages that could not be stored (each one is in error_logs).", "inbox", "folder"),
		retries: counter("backfill_retries_total", "Transient failures retried after a backoff.", "inbox"),
		bytes:   counter("backfill_bytes_downloaded_total", "Message content bytes downloaded from the IMAP server.", "inbox"),
		errors:  counter("backfill_errors_total", "Errors by class (errlog category: transient, message, critical).", "inbox", "class"),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backfill_connected",
			Help: "1 while the folder's IMAP connection is up, 0 otherwise."}, []string{"inbox", "folder"}),
		state: &folderState{folders: map[folderKey]*folderStatus{}},
	}
	reg.MustRegister(m.stored, m.skipped, m.failed, m.retries, m.bytes, m.errors, m.connected, m.state)
	return m
}

// Observer wraps next (which may be nil) so that every batch a run of
// inbox's folder commits is counted; every call is passed on to next.
func (m *Metrics) Observer(inbox, folder string, next pipeline.Observer) pipeline.Observer {
	return &observer{m: m, inbox: inbox, folder: folder, next: next}
}

// SetConnected records whether a folder's connection is up and whether it
// is waiting in IDLE (idle counts only while connected).
func (m *Metrics) SetConnected(inbox, folder string, idle bool, connected bool) {
	v := 0.0
	if connected {
		v = 1
	}
	m.connected.WithLabelValues(inbox, folder).Set(v)
	m.state.update(inbox, folder, func(f *folderStatus) {
		f.tracked, f.connected, f.idle = true, connected, idle && connected
	})
}

// Synced records that a folder was last known to be current at at; the
// scrape reports the seconds since then.
func (m *Metrics) Synced(inbox, folder string, at time.Time) {
	m.state.update(inbox, folder, func(f *folderStatus) {
		if at.After(f.synced) {
			f.synced = at
		}
	})
}

// Downloaded counts message content bytes fetched for inbox.
func (m *Metrics) Downloaded(inbox string, bytes int64) {
	if bytes > 0 {
		m.bytes.WithLabelValues(inbox).Add(float64(bytes))
	}
}

// Error counts one error of class (an errlog category) for inbox.
func (m *Metrics) Error(inbox, class string) {
	m.errors.WithLabelValues(inbox, class).Inc()
}

// Health returns nil while every folder given to SetConnected is connected,
// otherwise an error naming those that are not: a health function for
// NewHandler.
func (m *Metrics) Health(context.Context) error {
	down := m.state.disconnected()
	if len(down) == 0 {
		return nil
	}
	return fmt.Errorf("not connected: %s", strings.Join(down, ", "))
}

// observer counts a run's batches and passes every call on.
type observer struct {
	m             *Metrics
	inbox, folder string
	next          pipeline.Observer
}

func (o *observer) Connecting(cfg imapsrc.Config) {
	if o.next != nil {
		o.next.Connecting(cfg)
	}
}

func (o *observer) Listed(l pipeline.Listing) {
	if o.next != nil {
		o.next.Listed(l)
	}
}

func (o *observer) BatchDone(rep pipeline.BatchReport) {
	o.m.stored.WithLabelValues(o.inbox, o.folder).Add(float64(rep.Created))
	o.m.skipped.WithLabelValues(o.inbox, o.folder).Add(float64(rep.Skipped))
	o.m.failed.WithLabelValues(o.inbox, o.folder).Add(float64(rep.Failed))
	if o.next != nil {
		o.next.BatchDone(rep)
	}
}

func (o *observer) Retrying(what string, err error, attempt int, wait time.Duration) {
	o.m.retries.WithLabelValues(o.inbox).Inc()
	if o.next != nil {
		o.next.Retrying(what, err, attempt, wait)
	}
}

// folderState is the per-folder state that scrapes turn into gauges: the
// seconds since the last sync must be computed when scraped, not when set.
type folderState struct {
	mu      sync.Mutex
	folders map[folderKey]*folderStatus
}

type folderKey struct{ inbox, folder string }

type folderStatus struct {
	tracked, connected, idle bool // tracked: SetConnected was called
	synced                   time.Time
}

var (
	sinceSyncDesc = prometheus.NewDesc("backfill_seconds_since_last_sync",
		"Seconds since the folder was last known to be current.", []string{"inbox", "folder"}, nil)
	idleDesc = prometheus.NewDesc("backfill_idle_connections",
		"Connections waiting for new mail in IMAP IDLE.", []string{"inbox"}, nil)
)

func (s *folderState) update(inbox, name string, fn func(*folderStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := folderKey{inbox, name}
	f := s.folders[k]
	if f == nil {
		f = &folderStatus{}
		s.folders[k] = f
	}
	fn(f)
}

func (s *folderState) disconnected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var down []string
	for k, f := range s.folders {
		if f.tracked && !f.connected {
			down = append(down, k.inbox+"/"+k.folder)
		}
	}
	slices.Sort(down)
	return down
}

// Describe implements prometheus.Collector.
func (s *folderState) Describe(ch chan<- *prometheus.Desc) {
	ch <- sinceSyncDesc
	ch <- idleDesc
}

// Collect implements prometheus.Collector.
func (s *folderState) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	idle := map[string]int{}
	for k, f := range s.folders {
		if !f.synced.IsZero() {
			ch <- prometheus.MustNewConstMetric(sinceSyncDesc, prometheus.GaugeValue, now.Sub(f.synced).Seconds(), k.inbox, k.folder)
		}
		if f.tracked {
			n := idle[k.inbox] // an inbox with no idle folder reports 0
			if f.idle {
				n++
			}
			idle[k.inbox] = n
		}
	}
	for inbox, n := range idle {
		ch <- prometheus.MustNewConstMetric(idleDesc, prometheus.GaugeValue, float64(n), inbox)
	}
}
