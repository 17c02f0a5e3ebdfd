package ingest

import (
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's counters, exported through Collector.
type Metrics struct {
	accepted, processed, published, publishFailures atomic.Int64
	riskPublished, alertFailures                    atomic.Int64

	mu       sync.Mutex
	refused  map[string]int64 // by field ("" = the payload)
	actioned map[string]int64 // alert changes by action

	// Where a sample's time goes inside Vigil: waiting for its patient's worker, then handled
	// (state, NEWS2, rules, alerts, its risk_updated handed to the broker).
	queued, handled prometheus.Histogram
}

// sampleBuckets run from 50 us to about 6.5 s.
var sampleBuckets = prometheus.ExponentialBuckets(50e-6, 2, 18)

func newMetrics() *Metrics {
	return &Metrics{refused: map[string]int64{}, actioned: map[string]int64{},
		queued: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_ingest_sample_queued_seconds",
			Help: "Time from a sample's arrival to its patient's worker taking it up.", Buckets: sampleBuckets}),
		handled: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_ingest_sample_handled_seconds",
			Help: "Time a patient's worker takes over a sample, its events handed to the broker included.", Buckets: sampleBuckets}),
	}
}

// sampleTimes records where a sample's time went: queued from arrival to start, handled from
// start to end.
func (m *Metrics) sampleTimes(arrival, start, end time.Time) {
	m.queued.Observe(max(start.Sub(arrival), 0).Seconds())
	m.handled.Observe(max(end.Sub(start), 0).Seconds())
}

func (m *Metrics) rejected(e *FieldError) {
	m.mu.Lock()
	m.refused[e.Key]++
	m.mu.Unlock()
}

func (m *Metrics) alerts(action string) {
	m.mu.Lock()
	m.actioned[action]++
	m.mu.Unlock()
}

// Rejected returns the number of refused samples.
func (m *Metrics) Rejected() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, v := range m.refused {
		n += v
	}
	return n
}

var (
	descSamples  = prometheus.NewDesc("vigil_ingest_samples_total", "Vitals samples by outcome.", []string{"outcome"}, nil)
	descRefused  = prometheus.NewDesc("vigil_ingest_samples_refused_total", "Refused samples by field at fault (\"payload\": the sample as a whole).", []string{"field"}, nil)
	descEvents   = prometheus.NewDesc("vigil_ingest_events_published_total", "Events published.", nil, nil)
	descPubFail  = prometheus.NewDesc("vigil_ingest_publish_failures_total", "Events that could not be published.", nil, nil)
	descRisk     = prometheus.NewDesc("vigil_ingest_risk_updates_total", "risk_updated events published.", nil, nil)
	descAlerts   = prometheus.NewDesc("vigil_alert_changes_total", "Alert changes stored and published, by action.", []string{"action"}, nil)
	descAlertErr = prometheus.NewDesc("vigil_alert_store_failures_total", "Alert changes that could not be stored (retried).", nil, nil)
)

// Collector exports the metrics to Prometheus.
func (m *Metrics) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Metrics }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSamples, descRefused, descEvents, descPubFail, descRisk, descAlerts, descAlertErr} {
		ch <- d
	}
	c.m.queued.Describe(ch)
	c.m.handled.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	count := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	count(descSamples, m.accepted.Load(), "accepted")
	count(descSamples, m.processed.Load(), "processed")
	count(descEvents, m.published.Load())
	count(descPubFail, m.publishFailures.Load())
	count(descRisk, m.riskPublished.Load())
	count(descAlertErr, m.alertFailures.Load())
	m.queued.Collect(ch)
	m.handled.Collect(ch)
	m.mu.Lock()
	refused := make(map[string]int64, len(m.refused))
	for k, v := range m.refused {
		refused[k] = v
	}
	actioned := make(map[string]int64, len(m.actioned))
	for k, v := range m.actioned {
		actioned[k] = v
	}
	m.mu.Unlock()
	var total int64
	for _, k := range keys(refused) {
		name := k
		if name == "" {
			name = "payload"
		}
		count(descRefused, refused[k], name)
		total += refused[k]
	}
	count(descSamples, total, "refused")
	for _, k := range keys(actioned) {
		count(descAlerts, actioned[k], k)
	}
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func jsonEnvelope(e Envelope) ([]byte, error) { return json.Marshal(e) }
