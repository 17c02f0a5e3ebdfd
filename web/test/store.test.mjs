import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Store, isNewerAlert, validateSample } from '../static/js/store.js';

const T0 = Date.parse('2026-11-25T10:00:00Z');
const iso = (ms) => new Date(ms).toISOString();

function setup() {
  let now = T0;
  const store = new Store({ now: () => now });
  store.reset('h1');
  return { store, advance: (ms) => (now += ms), now: () => now };
}

const topic = (kind, id) => ({ hospital: 'h1', kind, id });
const env = (type, id, data, extra = {}) => JSON.stringify({ type, id, ts: iso(T0), hospital: 'h1', data, ...extra });

function alert(id, over = {}) {
  return {
    id,
    hospital: 'h1',
    patient: 'p1',
    kind: 'news2',
    category: 'physiological',
    priority: 'high',
    state: 'active',
    escalation_level: 0,
    message: 'NEWS2 7 (high)',
    raised_at: iso(T0),
    updated_at: iso(T0),
    ...over,
  };
}

const risk = { score: 7, level: 'high', contributions: { rr: 3, spo2: 2, o2: 0, sbp: 0, hr: 1, acvpu: 0, temp: 1 }, complete: true, missing: [] };

test('events are de-duplicated by envelope id', () => {
  const { store } = setup();
  const msg = env('patient_alert', 'e1', { action: 'raised', alert: alert('a1') });
  assert.equal(store.handleMessage(topic('patient_alerts', 'p1'), msg), true);
  assert.equal(store.handleMessage(topic('patient_alerts', 'p1'), msg), false);
  assert.equal(store.stats.duplicates, 1);
});

test('messages of another hospital are ignored', () => {
  const { store } = setup();
  assert.equal(store.handleMessage({ hospital: 'h2', kind: 'risk', id: 'p1' }, env('risk_updated', 'e1', risk)), false);
  assert.equal(store.handleMessage(topic('risk', 'p1'), env('risk_updated', 'e2', risk, { hospital: 'h2' })), false);
  assert.equal(store.patients.size, 0);
});

test('a risk event for an unknown patient adds it; an empty payload removes it', () => {
  const { store } = setup();
  const unknown = [];
  store.on('unknown-patient', (p) => unknown.push(p));
  store.handleMessage(topic('risk', 'p1'), env('risk_updated', 'e1', risk, { patient: 'p1' }), { retained: true });
  assert.deepEqual(unknown, ['p1']);
  assert.equal(store.patients.get('p1').risk.score, 7);
  store.handleMessage(topic('risk', 'p1'), '');
  assert.equal(store.patients.has('p1'), false);
});

test('malformed payloads do not throw', () => {
  const { store } = setup();
  assert.equal(store.handleMessage(topic('risk', 'p1'), '{not json'), false);
  assert.equal(store.handleMessage(topic('risk', 'p1'), '[]'), false);
  assert.equal(store.handleMessage(topic('risk', 'p1'), env('nonsense', 'e1', {})), false);
  assert.equal(store.handleMessage(topic('patient_alerts', 'p1'), env('patient_alert', 'e2', null)), false);
  assert.equal(store.handleMessage(topic('patient_alerts', 'p1'), env('patient_alert', 'e3', { action: 'raised' })), false);
});

test('validateSample', () => {
  assert.deepEqual(validateSample({ ts: iso(T0), seq: 1, hr: 88, o2: false, acvpu: 'A' }), { ts: iso(T0), seq: 1, hr: 88, o2: false, acvpu: 'A' });
  for (const bad of [{}, { seq: 1 }, { hr: 301 }, { spo2: 101 }, { temp: 24 }, { hr: '88' }, { o2: 'no' }, { acvpu: 'X' }, { hr: 80, ts: 'yesterday' }, null, []]) {
    assert.equal(validateSample(bad), null, JSON.stringify(bad));
  }
});

test('live vitals update the last values, never with an older sample', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1', name: 'Jane', bed: '1', last_vitals: { ts: iso(T0), hr: 80, temp: 37 } }], store.beginSync());
  const seen = [];
  store.on('vitals', (v) => seen.push(v));
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ ts: iso(T0 + 5000), seq: 2, hr: 90 }));
  assert.deepEqual(store.patients.get('p1').last_vitals, { ts: iso(T0 + 5000), hr: 90, temp: 37 });
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ ts: iso(T0 - 5000), seq: 1, hr: 70 }));
  assert.equal(store.patients.get('p1').last_vitals.hr, 90);
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ hr: 999 }));
  assert.equal(store.patients.get('p1').last_vitals.hr, 90);
  assert.equal(seen.length, 2);
  assert.equal(store.stats.rejectedSamples, 1);
});

test('live samples Vigil would refuse are not shown', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1', name: 'Jane', bed: '1', last_vitals: { ts: iso(T0), hr: 80 } }], store.beginSync());
  for (const bad of [
    { ts: iso(T0 + 60 * 60 * 1000), hr: 120 }, // an hour ahead: a fast monitor clock
    { ts: iso(T0 - 25 * 60 * 60 * 1000), hr: 120 }, // more than a day old
    { ts: iso(T0 + 1000), hr: 120, extra: 1 }, // an unknown field
    { ts: T0 + 1000, hr: 120 }, // ts as a number, not an RFC 3339 string
    { ts: iso(T0 + 1000), seq: -1, hr: 120 }, // seq not a non-negative integer
    { ts: iso(T0 + 1000), seq: 1.5, hr: 120 },
  ]) {
    assert.equal(store.handleMessage(topic('vitals', 'p1'), JSON.stringify(bad)), false, JSON.stringify(bad));
  }
  assert.deepEqual(store.patients.get('p1').last_vitals, { ts: iso(T0), hr: 80 });
  assert.equal(store.stats.rejectedSamples, 6);
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ ts: iso(T0 + 4 * 60 * 1000), hr: 95 })); // 4 min ahead: taken
  assert.equal(store.patients.get('p1').last_vitals.hr, 95);
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ ts: null, seq: 7, hr: 96 })); // no ts: received now
  assert.equal(store.patients.get('p1').last_vitals.hr, 95); // taken, but older than the 4-min-ahead one
  assert.equal(store.stats.rejectedSamples, 6);
});

test('alert updates are ordered by updated_at', () => {
  const later = alert('a1', { state: 'acknowledged', updated_at: iso(T0 + 1000) });
  const earlier = alert('a1', { state: 'active', updated_at: iso(T0) });
  assert.equal(isNewerAlert(later, earlier), true);
  assert.equal(isNewerAlert(earlier, later), false);
  // same time: the further state wins, then the higher escalation
  assert.equal(isNewerAlert(alert('a1', { state: 'resolved' }), alert('a1', { state: 'acknowledged' })), true);
  assert.equal(isNewerAlert(alert('a1', { state: 'active' }), alert('a1', { state: 'acknowledged' })), false);
  assert.equal(isNewerAlert(alert('a1', { escalation_level: 1 }), alert('a1', { escalation_level: 2 })), false);

  const { store } = setup();
  store.applyAlert(later, 'acknowledged');
  assert.equal(store.applyAlert(earlier, 'raised'), false);
  assert.equal(store.alerts.get('a1').state, 'acknowledged');
});

test('high and medium alerts stay until handled; low ones fade after 10 s', () => {
  const { store, advance } = setup();
  store.applyAlert(alert('hi', { priority: 'high' }), 'raised');
  store.applyAlert(alert('me', { priority: 'medium' }), 'raised');
  store.applyAlert(alert('lo', { priority: 'low' }), 'raised');
  assert.equal(store.unreadCount(), 3);
  assert.equal(store.removeItem('alert:hi'), false);
  assert.equal(store.clearPanel(), 2);
  assert.deepEqual(store.panelItems().map((i) => i.alertId).sort(), ['hi', 'me']);

  store.applyAlert(alert('lo2', { priority: 'low' }), 'raised');
  advance(9000);
  store.tick();
  assert.ok(store.panel.has('alert:lo2'));
  advance(1000);
  store.tick();
  assert.equal(store.panel.has('alert:lo2'), false);
  // an ordinary update of a faded alert does not bring it back
  store.applyAlert(alert('lo2', { priority: 'low', updated_at: iso(T0 + 20000), message: 'x' }), 'updated');
  assert.equal(store.panel.has('alert:lo2'), false);

  // acknowledged: may be removed; resolved: fades
  store.applyAlert(alert('hi', { state: 'acknowledged', updated_at: iso(T0 + 1) }), 'acknowledged');
  assert.equal(store.panelItems().find((i) => i.alertId === 'hi').pinned, false);
  store.applyAlert(alert('me', { state: 'resolved', updated_at: iso(T0 + 1) }), 'resolved');
  advance(10000);
  store.tick();
  assert.equal(store.panel.has('alert:me'), false);
  assert.equal(store.removeItem('alert:hi'), true);
  assert.equal(store.panel.size, 0);
});

test('escalation re-marks an alert unread and raises a banner until acknowledged', () => {
  const { store } = setup();
  store.applyAlert(alert('a1'), 'raised');
  store.markAllRead();
  assert.equal(store.unreadCount(), 0);
  assert.equal(store.escalations().length, 0);
  const esc = alert('a1', { escalation_level: 1, updated_at: iso(T0 + 60000) });
  store.handleMessage(topic('hospital_alerts'), env('patient_alert', 'e9', { action: 'escalated', alert: esc }));
  assert.equal(store.unreadCount(), 1);
  assert.deepEqual(store.escalations().map((a) => a.id), ['a1']);
  store.hideEscalation('a1');
  assert.equal(store.escalations().length, 0);
  store.applyAlert(alert('a1', { escalation_level: 2, updated_at: iso(T0 + 120000) }), 'escalated');
  assert.equal(store.escalations().length, 1, 'a further escalation shows again');
  store.applyAlert(alert('a1', { escalation_level: 2, state: 'acknowledged', updated_at: iso(T0 + 130000) }), 'acknowledged');
  assert.equal(store.escalations().length, 0);
});

test('a REST sync adds missed alerts and drops open alerts closed meanwhile', () => {
  const { store } = setup();
  store.applyAlert(alert('gone'), 'raised');
  const mark = store.beginSync();
  store.applyAlert(alert('during', { priority: 'low' }), 'raised'); // arrived live while fetching
  store.mergeAlerts([alert('missed', { priority: 'medium' })], mark);
  assert.deepEqual([...store.alerts.keys()].sort(), ['during', 'missed']);
  assert.equal(store.panel.has('alert:gone'), false);
  assert.equal(store.alertSummary({ id: 'p1' }).count, 2);
  assert.equal(store.alertSummary({ id: 'p1' }).priority, 'medium');
});

test('a REST patient list keeps newer live data and drops discharged patients', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1' }, { id: 'p2' }], store.beginSync());
  const mark = store.beginSync();
  store.handleMessage(topic('risk', 'p1'), env('risk_updated', 'e1', risk, { patient: 'p1' }));
  store.mergePatients([{ id: 'p1', name: 'Jane', bed: '3', risk: null }], mark);
  assert.deepEqual([...store.patients.keys()], ['p1']);
  assert.equal(store.patients.get('p1').name, 'Jane');
  assert.equal(store.patients.get('p1').risk.score, 7);
});

test('triage queue snapshots and case updates', () => {
  const { store } = setup();
  const c = (id, level, created, over = {}) => ({ hospital: 'h1', id, level, complaint: 'x', status: 'waiting', created_at: iso(created), updated_at: iso(created), ...over });
  store.handleMessage(topic('triage_queue'), env('triage_updated', 'q1', { queue: [c('c1', 3, T0), c('c2', 1, T0 + 1000), c('c3', 3, T0 - 1000)] }));
  assert.deepEqual(store.triageList().map((x) => x.id), ['c2', 'c3', 'c1']);
  store.handleMessage(topic('triage_case', 'c2'), env('triage_updated', 'q2', c('c2', 1, T0 + 1000, { status: 'done', updated_at: iso(T0 + 5000) })));
  assert.deepEqual(store.triageList().map((x) => x.id), ['c3', 'c1']);
  store.handleMessage(topic('triage_queue'), env('triage_updated', 'q3', { queue: [c('c1', 3, T0)] }, { ts: iso(T0 + 10000) }));
  assert.deepEqual(store.triageList().map((x) => x.id), ['c1']);
  store.handleMessage(topic('triage_case', 'c1'), '');
  assert.deepEqual(store.triageList(), []);
});

test('beds and staff update live, ignore stale updates, and note changes in the panel', () => {
  const { store } = setup();
  const bed = (status, t) => ({ hospital: 'h1', id: 'b1', status, patient: null, updated_at: iso(t) });
  store.handleMessage(topic('bed', 'b1'), env('bed_status_changed', 'e1', bed('occupied', T0)), { retained: true });
  store.handleMessage(topic('bed', 'b1'), env('bed_status_changed', 'e2', bed('cleaning', T0 + 1000)));
  store.handleMessage(topic('bed', 'b1'), env('bed_status_changed', 'e3', bed('free', T0 - 1000)));
  assert.equal(store.beds.get('b1').status, 'cleaning');
  const events = store.panelItems().filter((i) => i.kind === 'event');
  assert.equal(events.length, 1);
  assert.match(events[0].message, /Bed b1: Cleaning/);
  assert.equal(store.unreadCount(), 0, 'informational events do not count as unread');

  store.handleMessage(topic('staff', 's1'), env('staff_availability_changed', 'e4', { id: 's1', name: 'Dr A', role: 'doctor', available: true, on_shift: true, updated_at: iso(T0) }));
  store.handleMessage(topic('staff', 's2'), env('staff_availability_changed', 'e5', { id: 's2', name: 'Dr B', role: 'doctor', available: false, on_shift: true, updated_at: iso(T0) }));
  assert.deepEqual(store.staffList().map((m) => m.id), ['s1', 's2']);
  store.handleMessage(topic('staff', 's1'), '');
  assert.deepEqual(store.staffList().map((m) => m.id), ['s2']);
});

test('a bed event moves its patient on the ward without waiting for a sync', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1', name: 'Jane', bed: 'b1' }, { id: 'p2', name: 'John', bed: 'b5' }], store.beginSync());
  const bed = (id, status, patient, t) => ({ hospital: 'h1', id, status, patient, updated_at: iso(t) });
  store.handleMessage(topic('bed', 'b1'), env('bed_status_changed', 'e1', bed('b1', 'occupied', 'p1', T0)), { retained: true });
  // p1 moves to b2: b2 is occupied by p1, then b1 is to be cleaned.
  store.handleMessage(topic('bed', 'b2'), env('bed_status_changed', 'e2', bed('b2', 'occupied', 'p1', T0 + 1000)));
  assert.equal(store.patients.get('p1').bed, 'b2');
  store.handleMessage(topic('bed', 'b1'), env('bed_status_changed', 'e3', bed('b1', 'cleaning', null, T0 + 1000)));
  assert.equal(store.patients.get('p1').bed, 'b2', 'the bed left does not take the patient back');
  // b5 is freed: p2 no longer has a bed.
  store.handleMessage(topic('bed', 'b5'), env('bed_status_changed', 'e4', bed('b5', 'occupied', 'p2', T0)), { retained: true });
  store.handleMessage(topic('bed', 'b5'), env('bed_status_changed', 'e5', bed('b5', 'free', null, T0 + 2000)));
  assert.equal(store.patients.get('p2').bed, '');
  // A stale event changes nothing.
  store.handleMessage(topic('bed', 'b2'), env('bed_status_changed', 'e6', bed('b2', 'free', null, T0)));
  assert.equal(store.patients.get('p1').bed, 'b2');
  // A retained bed replayed on reconnect does not move anyone: the records are the truth.
  store.handleMessage(topic('bed', 'b7'), env('bed_status_changed', 'e7', bed('b7', 'occupied', 'p1', T0 + 3000)), { retained: true });
  assert.equal(store.patients.get('p1').bed, 'b2');
  // A patient list fetched before a live move does not undo it.
  const mark = store.beginSync();
  store.handleMessage(topic('bed', 'b8'), env('bed_status_changed', 'e8', bed('b8', 'occupied', 'p1', T0 + 4000)));
  store.mergePatients([{ id: 'p1', name: 'Jane', bed: 'b2' }, { id: 'p2', name: 'John', bed: '' }], mark);
  assert.equal(store.patients.get('p1').bed, 'b8');
});

test('hospital broadcasts: low fades, high stays until removed', () => {
  const { store, advance } = setup();
  store.handleMessage(topic('hospital_alerts'), env('hospital_alert', 'b1', { priority: 'low', message: 'Fire drill at 3', by: 'admin' }));
  store.handleMessage(topic('hospital_alerts'), env('hospital_alert', 'b2', { priority: 'high', message: 'Code red', by: 'admin' }));
  assert.equal(store.unreadCount(), 2);
  assert.deepEqual(store.bannerList().map((b) => b.id), ['b2', 'b1']);
  advance(10000);
  store.tick();
  assert.deepEqual(store.bannerList().map((b) => b.id), ['b2']);
  assert.deepEqual(store.panelItems().map((i) => i.key), ['broadcast:b2']);
  assert.equal(store.removeItem('broadcast:b2'), true);
  store.dismissBanner('b2');
  assert.equal(store.bannerList().length, 0);
});

test('a sync adds the broadcasts missed while not listening, once', () => {
  const { store } = setup();
  const live = { priority: 'high', message: 'live', by: 'dr' };
  store.handleMessage(topic('hospital_alerts'), env('hospital_alert', 'b2', live));
  store.dismissBanner('b2');
  const items = [ // newest first, as GET /hospitals/h1/broadcasts answers
    { id: 'b3', hospital: 'h1', priority: 'high', message: 'missed', by: 'dr', ts: iso(T0 + 2000) },
    { id: 'b2', hospital: 'h1', priority: 'high', message: 'live', by: 'dr', ts: iso(T0 + 1000) },
    { id: 'b1', hospital: 'h1', priority: 'high', message: 'old', by: 'dr', ts: iso(T0 - 120000) },
  ];
  assert.equal(store.mergeBroadcasts(items, T0 - 60000), true);
  assert.deepEqual(store.bannerList().map((b) => b.id), ['b3']); // b2 shown (and dismissed) already, b1 too old
  assert.equal(store.mergeBroadcasts(items, T0 - 60000), false); // a second sync adds nothing
  assert.deepEqual(store.bannerList().map((b) => b.id), ['b3']);
});

test('device status drives the patient device state', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1', devices: ['mon-1'] }, { id: 'p2', devices: [] }], store.beginSync());
  assert.equal(store.deviceState(store.patients.get('p1')), 'unknown');
  assert.equal(store.deviceState(store.patients.get('p2')), 'none');
  store.handleMessage(topic('device_status', 'mon-1'), env('device_status', 'd1', { device: 'mon-1', status: 'online', patient: 'p1' }));
  assert.equal(store.deviceState(store.patients.get('p1')), 'online');
  store.handleMessage(topic('device_status', 'mon-1'), env('device_status', 'd2', { device: 'mon-1', status: 'offline', patient: 'p1' }, { ts: iso(T0 + 1000) }));
  assert.equal(store.deviceState(store.patients.get('p1')), 'offline');
  store.handleMessage(topic('device_status', 'mon-2'), env('device_status', 'd3', { device: 'mon-2', status: 'online', patient: 'p2' }));
  assert.equal(store.deviceState(store.patients.get('p2')), 'online');
});

test('resolved alerts are forgotten a while after they left the panel', () => {
  const { store, advance } = setup();
  store.applyAlert(alert('a1', { priority: 'low' }), 'raised');
  store.applyAlert(alert('a1', { priority: 'low', state: 'resolved', updated_at: iso(T0 + 1000) }), 'resolved');
  advance(10000);
  store.tick();
  assert.equal(store.panel.size, 0);
  assert.ok(store.alerts.has('a1'), 'kept to order late updates');
  assert.equal(store.applyAlert(alert('a1', { priority: 'low', state: 'acknowledged' }), 'acknowledged'), false);
  advance(5 * 60 * 1000);
  store.tick();
  assert.equal(store.alerts.has('a1'), false);
});

test('after a reconnect the listed vitals replace older ones even when the live risk is kept', () => {
  const { store } = setup();
  store.mergePatients([{ id: 'p1', last_vitals: { ts: iso(T0), hr: 72, rr: 16 } }], store.beginSync());
  // Offline, the patient deteriorated. Back online: the retained risk comes at once, the missed
  // samples never do; the REST list has the latest vitals.
  const mark = store.beginSync();
  store.handleMessage(topic('risk', 'p1'), env('risk_updated', 'e1', risk, { patient: 'p1' }), { retained: true });
  store.mergePatients([{ id: 'p1', risk: null, last_vitals: { ts: iso(T0 + 60000), hr: 130, rr: 26 } }], mark);
  const p = store.patients.get('p1');
  assert.equal(p.risk.score, 7, 'the live risk is newer than the list');
  assert.deepEqual(p.last_vitals, { ts: iso(T0 + 60000), hr: 130, rr: 26 }, 'the vitals beside it are the listed ones');
  // A live sample newer than the list stays.
  const mark2 = store.beginSync();
  store.handleMessage(topic('vitals', 'p1'), JSON.stringify({ ts: iso(T0 + 70000), hr: 125 }));
  store.mergePatients([{ id: 'p1', last_vitals: { ts: iso(T0 + 60000), hr: 130, rr: 26 } }], mark2);
  assert.equal(store.patients.get('p1').last_vitals.hr, 125);
});
