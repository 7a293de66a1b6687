package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/internal/catalog"
)

type metrics struct {
	jobs     *prometheus.CounterVec
	attempts *prometheus.CounterVec
	running  prometheus.Gauge
	fires    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_scheduler_jobs_total", Help: "Jobs that reached a final state, by kind and state.",
		}, []string{"kind", "state"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_scheduler_attempts_total", Help: "Job attempts that ended, by kind and result (a job state, or interrupted).",
		}, []string{"kind", "result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "duet_scheduler_jobs_running", Help: "Job attempts running now.",
		}),
		fires: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_scheduler_cron_fires_total", Help: "Cron fires that queued a job: a view build (or were absorbed by a queued one), or a job schedule's job.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.attempts, m.running, m.fires)
	}
	return m
}

// attemptEnded counts an attempt that ended with result, and the job if it is final.
func (m *metrics) attemptEnded(j catalog.Job, result string) {
	m.attempts.WithLabelValues(j.Kind, result).Inc()
	if finished(j.State) {
		m.jobs.WithLabelValues(j.Kind, j.State).Inc()
	}
}
