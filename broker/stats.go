package broker

import (
	"sort"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the broker's counters. They are exported to Prometheus through Collector and read
// by the REST layer through Snapshot.
type Stats struct {
	devices, browsers    atomic.Int64
	vitals, vitalsFailed atomic.Int64
	published            atomic.Int64
	queueWaits           atomic.Int64 // publishes that waited for a client's outgoing queue
	inflightWaits        atomic.Int64 // publishes that waited for a client's acknowledgements

	mu       sync.Mutex
	refusals map[string]*atomic.Int64
	drops    map[string]*atomic.Int64

	server *mqtt.Server
}

func newStats() *Stats {
	return &Stats{refusals: map[string]*atomic.Int64{}, drops: map[string]*atomic.Int64{}}
}

func counter(mu *sync.Mutex, m map[string]*atomic.Int64, key string) *atomic.Int64 {
	mu.Lock()
	defer mu.Unlock()
	c, ok := m[key]
	if !ok {
		c = new(atomic.Int64)
		m[key] = c
	}
	return c
}

func (s *Stats) refused(reason string)           { counter(&s.mu, s.refusals, reason).Add(1) }
func (s *Stats) dropped(reason string)           { s.droppedN(reason, 1) }
func (s *Stats) droppedN(reason string, n int64) { counter(&s.mu, s.drops, reason).Add(n) }

func copyCounts(mu *sync.Mutex, m map[string]*atomic.Int64) map[string]int64 {
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v.Load()
	}
	return out
}

// Snapshot is the broker's state at one moment.
type Snapshot struct {
	DevicesConnected  int64            `json:"devices_connected"`
	BrowsersConnected int64            `json:"browsers_connected"`
	ClientsConnected  int64            `json:"clients_connected"`
	MessagesIn        int64            `json:"messages_in"`
	MessagesOut       int64            `json:"messages_out"`
	VitalsAccepted    int64            `json:"vitals_accepted"`
	VitalsFailed      int64            `json:"vitals_failed"`
	Retained          int64            `json:"retained"`
	Refusals          map[string]int64 `json:"refusals"`
	Drops             map[string]int64 `json:"drops"`
	// Subscribers counts the sessions subscribed to each filter (the earlier design's room users).
	Subscribers map[string]int `json:"subscribers"`
}

func (s *Stats) snapshot(server *mqtt.Server) Snapshot {
	snap := Snapshot{
		DevicesConnected:  s.devices.Load(),
		BrowsersConnected: s.browsers.Load(),
		ClientsConnected:  atomic.LoadInt64(&server.Info.ClientsConnected),
		MessagesIn:        atomic.LoadInt64(&server.Info.MessagesReceived),
		MessagesOut:       atomic.LoadInt64(&server.Info.MessagesSent),
		VitalsAccepted:    s.vitals.Load(),
		VitalsFailed:      s.vitalsFailed.Load(),
		Retained:          atomic.LoadInt64(&server.Info.Retained),
		Refusals:          copyCounts(&s.mu, s.refusals),
		Drops:             copyCounts(&s.mu, s.drops),
		Subscribers:       map[string]int{},
	}
	for _, cl := range server.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for filter := range cl.State.Subscriptions.GetAll() {
			snap.Subscribers[filter]++
		}
	}
	return snap
}

// Collector exports the broker's counters to Prometheus.
func (b *Broker) Collector() prometheus.Collector { return &collector{b: b} }

type collector struct{ b *Broker }

var (
	descConnected = prometheus.NewDesc("vigil_mqtt_connected", "MQTT connections by kind.", []string{"kind"}, nil)
	descMessages  = prometheus.NewDesc("vigil_mqtt_messages_total", "MQTT PUBLISH packets by direction.", []string{"direction"}, nil)
	descBytes     = prometheus.NewDesc("vigil_mqtt_bytes_total", "MQTT bytes by direction.", []string{"direction"}, nil)
	descRefusals  = prometheus.NewDesc("vigil_mqtt_refusals_total", "Connections, publishes and subscriptions refused, by reason.", []string{"reason"}, nil)
	descDrops     = prometheus.NewDesc("vigil_mqtt_drops_total", "Messages dropped for slow subscribers, by reason.", []string{"reason"}, nil)
	descVitals    = prometheus.NewDesc("vigil_mqtt_vitals_total", "Vitals publishes handed to ingest, by result.", []string{"result"}, nil)
	descRetained  = prometheus.NewDesc("vigil_mqtt_retained_messages", "Retained messages held.", nil, nil)
	descSubs      = prometheus.NewDesc("vigil_mqtt_subscriptions", "Subscriptions held.", nil, nil)
	descInflight  = prometheus.NewDesc("vigil_mqtt_inflight_messages", "QoS 1/2 messages awaiting acknowledgement.", nil, nil)
	descWaits     = prometheus.NewDesc("vigil_mqtt_queue_waits_total", "Publishes that waited for a client's outgoing queue to drain (a saturated CPU, or a burst).", nil, nil)
	descAckWaits  = prometheus.NewDesc("vigil_mqtt_ack_waits_total", "Publishes that waited for a client to acknowledge earlier messages (its inflight set three-quarters full).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descMessages, descBytes, descRefusals, descDrops, descVitals, descRetained, descSubs, descInflight, descWaits, descAckWaits} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, info := c.b.stats, c.b.server.Info
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	count := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnected, s.devices.Load(), "device")
	gauge(descConnected, s.browsers.Load(), "browser")
	count(descMessages, atomic.LoadInt64(&info.MessagesReceived), "in")
	count(descMessages, atomic.LoadInt64(&info.MessagesSent), "out")
	count(descBytes, atomic.LoadInt64(&info.BytesReceived), "in")
	count(descBytes, atomic.LoadInt64(&info.BytesSent), "out")
	count(descVitals, s.vitals.Load(), "accepted")
	count(descVitals, s.vitalsFailed.Load(), "failed")
	gauge(descRetained, atomic.LoadInt64(&info.Retained))
	gauge(descSubs, atomic.LoadInt64(&info.Subscriptions))
	gauge(descInflight, atomic.LoadInt64(&info.Inflight))
	count(descWaits, s.queueWaits.Load())
	count(descAckWaits, s.inflightWaits.Load())
	for _, kv := range sorted(copyCounts(&s.mu, s.refusals)) {
		count(descRefusals, kv.v, kv.k)
	}
	for _, kv := range sorted(copyCounts(&s.mu, s.drops)) {
		count(descDrops, kv.v, kv.k)
	}
}

type kv struct {
	k string
	v int64
}

func sorted(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].k < out[j].k })
	return out
}
