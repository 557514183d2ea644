package fleet

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
)

// Metrics counts a worker process's jobs and, at each scrape, the whole
// fleet's queue: every worker reports the same queue, so alert on one.
type Metrics struct {
	finished *prometheus.CounterVec // {inbox, result}
	running  prometheus.Gauge
	queue    *queueCollector
}

// NewMetrics makes a worker's job metrics; the queue is counted through
// pool at each scrape.
func NewMetrics(pool *pgxpool.Pool) *Metrics {
	return &Metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backfill_jobs_finished_total",
			Help: "Job runs this process finished, by result: completed, continued (ran --max-job-time), snoozed (budget or lock), cancelled, retry, interrupted."},
			[]string{"inbox", "result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backfill_jobs_running",
			Help: "Jobs this process is running."}),
		queue: &queueCollector{pool: pool, desc: prometheus.NewDesc("backfill_jobs",
			"Backfill jobs in the queue (all workers), by River state.", []string{"state"}, nil)},
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.finished, m.running, m.queue}
}

// Observe counts a job event (Options.Events).
func (m *Metrics) Observe(ev Event) {
	if ev.Start {
		m.running.Inc()
		return
	}
	m.running.Dec()
	m.finished.WithLabelValues(ev.Job.Inbox, ev.Result).Inc()
}

// queueCollector counts river_job rows by state when scraped, so that the
// numbers are the database's, not one process's view.
type queueCollector struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[string]float64{}
	for _, s := range []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
		rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning,
		rivertype.JobStateScheduled} {
		counts[string(s)] = 0
	}
	rows, err := q.pool.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY 1`, Kind)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(q.desc, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			ch <- prometheus.NewInvalidMetric(q.desc, err)
			return
		}
		counts[state] = float64(n)
	}
	if err := rows.Err(); err != nil {
		ch <- prometheus.NewInvalidMetric(q.desc, err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, n, state)
	}
}
