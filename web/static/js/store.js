// The dashboard's state for one hospital: patients, alerts, beds, staff, triage, devices, and
// the alert panel. It merges REST snapshots and MQTT events, drops duplicate events (by
// envelope id) and stale ones (by updated_at), and tells views what changed. No DOM here.

import {
  FADE_MS,
  compareNatural,
  comparePatients,
  compareStaff,
  compareTriage,
  bedLabel,
  bedStatusLabel,
  parseTime,
  patientName,
  priorityRank,
  stateRank,
  triageLevelLabel,
  triageStatusLabel,
} from './format.js';
import { validID } from './topics.js';

/** How many envelope IDs are remembered for de-duplication. */
const SEEN_LIMIT = 5000;
/** How many informational events the panel keeps at most. */
const EVENT_LIMIT = 50;

/** How long a resolved alert is remembered once it left the panel. */
const RESOLVED_KEEP_MS = 5 * 60 * 1000;

const OPEN_STATES = new Set(['active', 'acknowledged']);
export const VITAL_KEYS = ['hr', 'rr', 'spo2', 'sbp', 'temp', 'o2', 'acvpu'];

// Plausible ranges; DESIGN.md section 5 names hr <= 300, spo2 <= 100, temp 25..45. Vigil refuses
// implausible samples, but browsers see the devices' raw publications, so we check them too.
const RANGES = {
  hr: [0, 300],
  rr: [0, 100],
  spo2: [0, 100],
  sbp: [0, 300],
  temp: [25, 45],
};
const ACVPU = new Set(['A', 'C', 'V', 'P', 'U']);

/**
 * Checks a raw vitals sample. Returns a clean copy (known fields only) or null when a field has
 * the wrong type or an implausible value, or when the sample measures nothing.
 */
export function validateSample(raw) {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const s = {};
  let measured = 0;
  for (const [k, [lo, hi]] of Object.entries(RANGES)) {
    if (raw[k] === undefined || raw[k] === null) continue;
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) return null;
    s[k] = v;
    measured++;
  }
  if (raw.o2 !== undefined && raw.o2 !== null) {
    if (typeof raw.o2 !== 'boolean') return null;
    s.o2 = raw.o2;
    measured++;
  }
  if (raw.acvpu !== undefined && raw.acvpu !== null) {
    if (!ACVPU.has(raw.acvpu)) return null;
    s.acvpu = raw.acvpu;
    measured++;
  }
  if (measured === 0) return null;
  if (raw.ts !== undefined && raw.ts !== null) { // null: not given, as Vigil reads it
    if (!Number.isFinite(parseTime(raw.ts))) return null;
    s.ts = raw.ts;
  }
  if (Number.isFinite(raw.seq)) s.seq = raw.seq;
  if (typeof raw.device === 'string') s.device = raw.device;
  if (typeof raw.author === 'string') s.author = raw.author;
  return s;
}

/** The fields of a monitor's sample (DESIGN section 5); Vigil refuses a sample with any other. */
const SAMPLE_KEYS = new Set(['ts', 'seq', 'hr', 'rr', 'spo2', 'sbp', 'temp', 'o2', 'acvpu']);

/** How far from now Vigil accepts a sample's ts (ingest.MaxFuture and MaxPast). */
const MAX_FUTURE_MS = 5 * 60 * 1000;
const MAX_PAST_MS = 24 * 60 * 60 * 1000;

/**
 * Reports whether Vigil would take the monitor's sample raw (s: its validateSample copy): no
 * unknown field, and a ts from 24 h ago to 5 min ahead (by this browser's clock). A monitor
 * whose clock runs an hour fast has every sample refused; showing them would make its values
 * look fresh for the hour after it stops.
 */
export function acceptedLive(raw, s, now) {
  if (Object.keys(raw).some((k) => !SAMPLE_KEYS.has(k))) return false;
  if (raw.ts !== undefined && raw.ts !== null && typeof raw.ts !== 'string') return false; // an RFC 3339 string
  if (raw.seq !== undefined && raw.seq !== null && !(Number.isSafeInteger(raw.seq) && raw.seq >= 0)) return false;
  if (s.ts === undefined) return true;
  const t = parseTime(s.ts);
  return t <= now + MAX_FUTURE_MS && t >= now - MAX_PAST_MS;
}

/** Returns a well-formed risk object, or null. */
export function normaliseRisk(r) {
  if (!r || typeof r !== 'object') return null;
  return {
    score: Number.isFinite(r.score) ? r.score : null,
    level: typeof r.level === 'string' ? r.level : '',
    contributions: r.contributions && typeof r.contributions === 'object' ? r.contributions : {},
    complete: r.complete === true,
    missing: Array.isArray(r.missing) ? r.missing.filter((m) => typeof m === 'string') : [],
  };
}

/**
 * Reports whether alert a should replace b (same id): the later updated_at wins; on equal or
 * unknown times the further state (active < acknowledged < resolved), then the higher
 * escalation level; an identical version replaces (idempotent).
 */
export function isNewerAlert(a, b) {
  const ta = parseTime(a.updated_at);
  const tb = parseTime(b.updated_at);
  if (Number.isFinite(ta) && Number.isFinite(tb) && ta !== tb) return ta > tb;
  const sa = stateRank(a.state);
  const sb = stateRank(b.state);
  if (sa !== sb) return sa > sb;
  return (a.escalation_level ?? 0) >= (b.escalation_level ?? 0);
}

/** Reports whether item a is older than b by updated_at (both known). */
function isOlder(a, b) {
  const ta = parseTime(a.updated_at);
  const tb = parseTime(b.updated_at);
  return Number.isFinite(ta) && Number.isFinite(tb) && ta < tb;
}

function alertTime(a) {
  const t = parseTime(a.updated_at);
  return Number.isFinite(t) ? t : parseTime(a.raised_at);
}

/** Whether an alert must stay in the panel until it is handled (IEC 60601-1-8 high/medium). */
function isSticky(a) {
  return a.state === 'active' && (priorityRank(a.priority) >= 2 || (a.escalation_level ?? 0) > 0);
}

export class Store {
  constructor({ now = () => Date.now() } = {}) {
    this.now = now;
    this.listeners = new Map();
    this.batchDirty = null;
    this.stats = { malformed: 0, rejectedSamples: 0, duplicates: 0, stale: 0 };
    this.reset(null);
  }

  /** Forgets everything and starts over for hospital h (null: none). */
  reset(hospital) {
    this.hospital = hospital;
    this.patients = new Map();
    this.alerts = new Map();
    this.beds = new Map();
    this.staff = new Map();
    this.triage = new Map();
    this.devices = new Map();
    this.seen = new Set();
    this.panel = new Map(); // key -> item
    this.dismissed = new Set(); // alert IDs removed from the panel or faded out
    this.banners = new Map(); // broadcast id -> banner
    this.broadcastIds = new Set(); // broadcasts shown (live or from a sync), never shown twice
    this.hiddenEscalations = new Set(); // `${alertId}@${level}`
    this.synced = { patients: false, alerts: false, beds: false, staff: false, triage: false };
    this.clock = 0;
    this.eventSeq = 0;
    for (const ch of ['patients', 'alerts', 'panel', 'banners', 'beds', 'staff', 'triage', 'devices']) {
      this.emit(ch);
    }
  }

  // ---- change notification ----

  /** Subscribes fn to a channel; returns the function that unsubscribes. */
  on(channel, fn) {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(channel, detail) {
    if (this.batchDirty && detail === undefined) {
      this.batchDirty.add(channel);
      return;
    }
    const set = this.listeners.get(channel);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`vigil: ${channel} listener failed`, err);
      }
    }
  }

  /** Runs fn, then notifies each changed channel once. */
  batch(fn) {
    if (this.batchDirty) return fn();
    this.batchDirty = new Set();
    try {
      return fn();
    } finally {
      const dirty = this.batchDirty;
      this.batchDirty = null;
      for (const ch of dirty) this.emit(ch);
    }
  }

  /** Marks the start of a REST sync: records not touched since are replaced by its answer. */
  beginSync() {
    return ++this.clock;
  }

  // ---- MQTT messages ----

  /**
   * Applies one MQTT message. info is parseTopic's answer; text the UTF-8 payload; retained
   * whether the broker delivered it from its retained store. Returns whether state changed.
   */
  handleMessage(info, text, { retained = false } = {}) {
    if (!info || info.hospital !== this.hospital) return false;
    if (text === '' || text === undefined || text === null) return this.handleDeleted(info);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.stats.malformed++;
      return false;
    }
    if (info.kind === 'vitals') return this.applyVitals(info.id, msg);
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this.stats.malformed++;
      return false;
    }
    if (msg.hospital && msg.hospital !== this.hospital) return false;
    if (msg.id !== undefined && msg.id !== null && msg.id !== '') {
      const id = String(msg.id);
      if (this.seen.has(id)) {
        this.stats.duplicates++;
        return false;
      }
      this.seen.add(id);
      if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value);
    }
    const data = msg.data;
    const live = !retained;
    switch (msg.type) {
      case 'risk_updated':
        return this.applyRisk(msg.patient || info.id, data);
      case 'patient_alert':
        return !!data && this.applyAlert(data.alert, data.action);
      case 'hospital_alert':
        return this.addBroadcast(msg);
      case 'triage_updated':
        if (info.kind === 'triage_queue') return this.applyTriageQueue(data && data.queue, msg.ts);
        return this.upsertTriage(data, { live, id: info.kind === 'triage_case' ? info.id : undefined });
      case 'bed_status_changed':
        return this.upsertBed(data, { live, id: info.kind === 'bed' ? info.id : undefined });
      case 'staff_availability_changed':
        return this.upsertStaff(data, { live, id: info.kind === 'staff' ? info.id : undefined });
      case 'device_status':
        return this.applyDevice((data && data.device) || info.id, data, msg.ts, msg.patient);
      default:
        return false;
    }
  }

  /** An empty payload deletes what a retained topic held. */
  handleDeleted(info) {
    switch (info.kind) {
      case 'risk':
        return this.removePatient(info.id);
      case 'bed':
        return this.deleteFrom(this.beds, info.id, 'beds');
      case 'staff':
        return this.deleteFrom(this.staff, info.id, 'staff');
      case 'triage_case':
        return this.deleteFrom(this.triage, info.id, 'triage');
      case 'triage_queue':
        return this.applyTriageQueue([], null);
      case 'device_status':
        if (!this.deleteFrom(this.devices, info.id, 'devices')) return false;
        this.emit('patients');
        return true;
      default:
        return false;
    }
  }

  deleteFrom(map, id, channel) {
    if (!map.delete(id)) return false;
    this.emit(channel);
    return true;
  }

  // ---- patients ----

  newPatient(id) {
    return {
      hospital: this.hospital,
      id,
      name: '',
      bed: '',
      spo2_scale: 1,
      admitted_at: null,
      risk: null,
      open_alerts: 0,
      devices: [],
      last_vitals: null,
      _seen: 0,
      _liveRisk: 0, // clock of the last live risk event
      _liveVitals: 0, // clock of the last live vitals sample
      _liveBed: 0, // clock of the last bed move heard live
      _stub: true,
    };
  }

  applyRisk(p, risk) {
    if (!validID(p)) return false;
    let pt = this.patients.get(p);
    const isNew = !pt;
    if (isNew) {
      pt = this.newPatient(p);
      this.patients.set(p, pt);
    }
    pt.risk = normaliseRisk(risk);
    pt._liveRisk = pt._seen = ++this.clock;
    this.emit('patients');
    this.emit(`patient:${p}`);
    if (isNew) this.emit('unknown-patient', p);
    return true;
  }

  removePatient(p) {
    if (!this.patients.delete(p)) return false;
    this.emit('patients');
    this.emit('patient-removed', p);
    return true;
  }

  /**
   * Applies one live vitals sample of patient p (from its vitals topic). A sample Vigil refuses
   * (see acceptedLive) is not shown either: its values would count nowhere, yet look fresh.
   */
  applyVitals(p, raw) {
    const s = validateSample(raw);
    if (!s || !acceptedLive(raw, s, this.now())) {
      this.stats.rejectedSamples++;
      return false;
    }
    if (s.ts === undefined) s.ts = new Date(this.now()).toISOString();
    const pt = this.patients.get(p);
    if (pt) {
      const cur = pt.last_vitals ? parseTime(pt.last_vitals.ts) : NaN;
      if (!Number.isFinite(cur) || parseTime(s.ts) >= cur) {
        const lv = { ...(pt.last_vitals || {}) };
        for (const k of VITAL_KEYS) if (k in s) lv[k] = s[k];
        lv.ts = s.ts;
        pt.last_vitals = lv;
        pt._liveVitals = pt._seen = ++this.clock;
        this.emit('patients');
        this.emit(`patient:${p}`);
      }
    }
    this.emit('vitals', { patient: p, sample: s });
    return true;
  }

  /** Merges the REST patient list fetched since mark; patients gone from it were discharged. */
  mergePatients(items, mark) {
    return this.batch(() => {
      const ids = new Set();
      for (const item of items || []) {
        if (!item || !validID(item.id)) continue;
        if (item.hospital && item.hospital !== this.hospital) continue;
        ids.add(item.id);
        const prev = this.patients.get(item.id);
        const rec = {
          ...this.newPatient(item.id),
          ...item,
          devices: Array.isArray(item.devices) ? item.devices : [],
          risk: normaliseRisk(item.risk),
          last_vitals: item.last_vitals && typeof item.last_vitals === 'object' ? item.last_vitals : null,
          _stub: false,
        };
        // Live data that arrived while the list was being fetched is newer, but risk and vitals
        // come on different topics and only the risk is retained: after a reconnect the risk
        // is replayed at once while the samples that produced it were missed, so each is
        // judged on its own (keeping the live risk must not keep stale vitals beside it).
        if (prev && prev._liveRisk > mark) {
          rec.risk = prev.risk;
          rec._liveRisk = prev._liveRisk;
        }
        // Likewise a bed move heard live while the list was on its way (see bedMoves).
        if (prev && prev._liveBed > mark) {
          rec.bed = prev.bed;
          rec._liveBed = prev._liveBed;
        }
        if (prev?.last_vitals) {
          const live = parseTime(prev.last_vitals.ts);
          const listed = parseTime(rec.last_vitals?.ts);
          if (Number.isFinite(live) && (!Number.isFinite(listed) || live > listed)) {
            rec.last_vitals = prev.last_vitals;
            rec._liveVitals = prev._liveVitals;
          }
        }
        rec._seen = ++this.clock;
        this.patients.set(item.id, rec);
        this.emit(`patient:${item.id}`);
      }
      for (const [id, p] of this.patients) {
        if (!ids.has(id) && p._seen < mark) {
          this.patients.delete(id);
          this.emit('patient-removed', id);
        }
      }
      this.synced.patients = true;
      this.emit('patients');
    });
  }

  patientList() {
    return [...this.patients.values()].sort(comparePatients);
  }

  // ---- alerts ----

  /** Applies an alert (from an event or a REST answer). Returns whether it changed. */
  applyAlert(alert, action) {
    if (!alert || typeof alert !== 'object' || !alert.id) return false;
    if (alert.hospital && alert.hospital !== this.hospital) return false;
    const id = String(alert.id);
    const prev = this.alerts.get(id);
    if (prev && !isNewerAlert(alert, prev)) {
      this.stats.stale++;
      return false;
    }
    const rec = { ...alert, id, _seen: ++this.clock };
    if (rec.state === 'resolved') rec._resolvedAt = prev?._resolvedAt ?? this.now();
    this.alerts.set(id, rec);
    this.batch(() => {
      this.updatePanelForAlert(rec, prev, action);
      this.emit('alerts');
      this.emit('patients');
      if (rec.patient) this.emit(`patient:${rec.patient}`);
    });
    return true;
  }

  updatePanelForAlert(rec, prev, action) {
    const key = `alert:${rec.id}`;
    const now = this.now();
    const level = rec.escalation_level ?? 0;
    const escalated = prev ? level > (prev.escalation_level ?? 0) : level > 0 || action === 'escalated';
    const worse = !!prev && priorityRank(rec.priority) > priorityRank(prev.priority);
    const reraised = !!prev && prev.state !== 'active' && rec.state === 'active';
    const bumped = escalated || worse || reraised;
    let item = this.panel.get(key);
    if (!item) {
      if (rec.state === 'resolved') return; // nothing left to act on
      if (prev && !bumped) return; // known and already seen (faded or removed)
      if (this.dismissed.has(rec.id) && !bumped) return;
      this.dismissed.delete(rec.id);
      item = { key, kind: 'alert', alertId: rec.id, read: false, addedAt: now, expiresAt: null };
      this.panel.set(key, item);
    } else if (bumped) {
      item.read = false;
    }
    if (isSticky(rec)) item.expiresAt = null;
    else if (item.expiresAt === null || bumped) item.expiresAt = now + FADE_MS;
    this.emit('panel');
    this.emit('banners');
  }

  /** Merges the REST list of open alerts fetched since mark; open alerts missing from it closed. */
  mergeAlerts(items, mark) {
    return this.batch(() => {
      const ids = new Set();
      for (const a of items || []) {
        if (!a || !a.id) continue;
        ids.add(String(a.id));
        this.applyAlert(a, 'sync');
      }
      for (const [id, a] of this.alerts) {
        if (ids.has(id) || a._seen >= mark) continue;
        if (OPEN_STATES.has(a.state) || !this.panel.has(`alert:${id}`)) {
          this.alerts.delete(id);
          this.panel.delete(`alert:${id}`);
        }
      }
      this.synced.alerts = true;
      this.emit('alerts');
      this.emit('panel');
      this.emit('banners');
      this.emit('patients');
    });
  }

  /** Open (active or acknowledged) alerts, optionally of one patient, most urgent first. */
  openAlerts(patient) {
    const out = [];
    for (const a of this.alerts.values()) {
      if (!OPEN_STATES.has(a.state)) continue;
      if (patient !== undefined && a.patient !== patient) continue;
      out.push(a);
    }
    return out.sort(
      (a, b) =>
        stateRank(a.state) - stateRank(b.state) ||
        priorityRank(b.priority) - priorityRank(a.priority) ||
        alertTime(a) - alertTime(b),
    );
  }

  /** Number of open alerts of a patient and the highest priority among them. */
  alertSummary(p) {
    if (!this.synced.alerts) {
      const n = Number.isFinite(p.open_alerts) ? p.open_alerts : 0;
      return { count: n, priority: '' };
    }
    let count = 0;
    let priority = '';
    for (const a of this.alerts.values()) {
      if (a.patient !== p.id || !OPEN_STATES.has(a.state)) continue;
      count++;
      if (a.state === 'active' && priorityRank(a.priority) > priorityRank(priority)) priority = a.priority;
    }
    return { count, priority };
  }

  /** Escalated alerts still unacknowledged (shown as banners), most escalated first. */
  escalations() {
    return [...this.alerts.values()]
      .filter(
        (a) =>
          a.state === 'active' &&
          (a.escalation_level ?? 0) > 0 &&
          !this.hiddenEscalations.has(`${a.id}@${a.escalation_level}`),
      )
      .sort(
        (a, b) =>
          b.escalation_level - a.escalation_level ||
          priorityRank(b.priority) - priorityRank(a.priority) ||
          alertTime(a) - alertTime(b),
      );
  }

  hideEscalation(alertId) {
    const a = this.alerts.get(alertId);
    if (!a) return;
    this.hiddenEscalations.add(`${a.id}@${a.escalation_level ?? 0}`);
    this.emit('banners');
  }

  // ---- hospital broadcasts and informational events ----

  addBroadcast(env) {
    const d = env.data && typeof env.data === 'object' ? env.data : {};
    const now = this.now();
    const id = env.id ? String(env.id) : `local-${++this.eventSeq}`;
    if (this.broadcastIds.has(id)) return false;
    this.broadcastIds.add(id);
    const priority = priorityRank(d.priority) ? d.priority : 'low';
    const ts = parseTime(env.ts);
    const b = {
      key: `broadcast:${id}`,
      kind: 'broadcast',
      id,
      priority,
      message: typeof d.message === 'string' ? d.message : '',
      by: typeof d.by === 'string' ? d.by : '',
      ts: Number.isFinite(ts) ? ts : now,
      read: false,
      addedAt: now,
      expiresAt: priorityRank(priority) >= 2 ? null : now + FADE_MS,
    };
    this.batch(() => {
      this.panel.set(b.key, b);
      this.banners.set(id, { ...b });
      this.emit('panel');
      this.emit('banners');
    });
    return true;
  }

  /**
   * Adds the broadcasts of a REST list (newest first) sent after since (ms) that this page has
   * not shown: those sent while it was not listening (a dropped connection, a reload).
   */
  mergeBroadcasts(items, since) {
    let added = false;
    for (const item of items || []) {
      if (!item || typeof item.id !== 'string' || (item.hospital && item.hospital !== this.hospital)) continue;
      const ts = parseTime(item.ts);
      if (!Number.isFinite(ts) || ts <= since) break; // newest first: the rest are older
      added = this.addBroadcast({ id: item.id, ts: item.ts, data: { priority: item.priority, message: item.message, by: item.by } }) || added;
    }
    return added;
  }

  dismissBanner(id) {
    if (this.banners.delete(id)) this.emit('banners');
  }

  bannerList() {
    return [...this.banners.values()].sort((a, b) => priorityRank(b.priority) - priorityRank(a.priority) || b.ts - a.ts);
  }

  addEvent(source, message, refs = {}) {
    const now = this.now();
    const key = `event:${++this.eventSeq}`;
    this.panel.set(key, { key, kind: 'event', source, message, ts: now, read: true, addedAt: now, expiresAt: now + FADE_MS, ...refs });
    const events = [...this.panel.values()].filter((i) => i.kind === 'event');
    for (let i = 0; i < events.length - EVENT_LIMIT; i++) this.panel.delete(events[i].key);
    this.emit('panel');
  }

  // ---- the alert panel ----

  /** Panel items, each alert item with its current alert; pinned ones first, then newest. */
  panelItems() {
    const out = [];
    for (const item of this.panel.values()) {
      if (item.kind === 'alert') {
        const alert = this.alerts.get(item.alertId);
        if (!alert) continue;
        out.push({ ...item, alert, pinned: isSticky(alert), time: alertTime(alert) });
      } else {
        out.push({ ...item, pinned: false, time: item.ts });
      }
    }
    const urgency = (i) => (i.pinned ? priorityRank(i.alert.priority) + 10 * (i.alert.escalation_level ?? 0) : -1);
    return out.sort((a, b) => urgency(b) - urgency(a) || (b.time || 0) - (a.time || 0));
  }

  unreadCount() {
    let n = 0;
    for (const item of this.panel.values()) {
      if (item.read || item.kind === 'event') continue;
      if (item.kind === 'alert' && !this.alerts.has(item.alertId)) continue;
      n++;
    }
    return n;
  }

  markRead(key) {
    const item = this.panel.get(key);
    if (!item || item.read) return;
    item.read = true;
    this.emit('panel');
  }

  markAllRead() {
    for (const item of this.panel.values()) item.read = true;
    this.emit('panel');
  }

  /** Removes an item; refused (false) for alerts that must stay until handled. */
  removeItem(key) {
    const item = this.panel.get(key);
    if (!item) return true;
    if (item.kind === 'alert') {
      const a = this.alerts.get(item.alertId);
      if (a && isSticky(a)) return false;
      this.dismissed.add(item.alertId);
    }
    this.panel.delete(key);
    this.emit('panel');
    return true;
  }

  /** Removes every item that may be removed; returns how many stayed. */
  clearPanel() {
    let kept = 0;
    this.batch(() => {
      for (const key of [...this.panel.keys()]) if (!this.removeItem(key)) kept++;
    });
    return kept;
  }

  /** Drops panel items and banners whose time is up. */
  tick() {
    const now = this.now();
    this.batch(() => {
      for (const [key, item] of this.panel) {
        if (item.expiresAt !== null && item.expiresAt <= now) {
          this.panel.delete(key);
          if (item.kind === 'alert') this.dismissed.add(item.alertId);
          this.emit('panel');
        }
      }
      // Forget resolved alerts after a while (kept meanwhile to order late, stale updates).
      for (const [id, a] of this.alerts) {
        if (a._resolvedAt !== undefined && now - a._resolvedAt > RESOLVED_KEEP_MS && !this.panel.has(`alert:${id}`)) {
          this.alerts.delete(id);
          this.dismissed.delete(id);
        }
      }
      for (const [id, b] of this.banners) {
        if (b.expiresAt !== null && b.expiresAt <= now) {
          this.banners.delete(id);
          this.emit('banners');
        }
      }
    });
  }

  // ---- beds, staff, triage ----

  upsertEntity(map, item, idHint, channel) {
    if (!item || typeof item !== 'object') return null;
    const id = item.id !== undefined ? String(item.id) : idHint;
    if (!validID(id)) return null;
    if (item.hospital && item.hospital !== this.hospital) return null;
    const prev = map.get(id);
    if (prev && isOlder(item, prev)) {
      this.stats.stale++;
      return null;
    }
    const rec = { ...item, id, _seen: ++this.clock };
    map.set(id, rec);
    this.emit(channel);
    return { prev, rec };
  }

  mergeEntities(map, items, mark, channel) {
    return this.batch(() => {
      const ids = new Set();
      for (const item of items || []) {
        const r = this.upsertEntity(map, item, undefined, channel);
        if (r) ids.add(r.rec.id);
        else if (item && item.id !== undefined) ids.add(String(item.id));
      }
      for (const [id, rec] of map) if (!ids.has(id) && rec._seen < mark) map.delete(id);
      this.synced[channel] = true;
      this.emit(channel);
    });
  }

  upsertBed(bed, { live = false, id } = {}) {
    const r = this.upsertEntity(this.beds, bed, id, 'beds');
    if (!r) return false;
    // Live changes only: a retained bed replayed on (re)connect may be older than the patients'
    // records, which are the truth and come with the sync.
    if (live) this.bedMoves(r);
    if (live && r.prev && r.prev.status !== r.rec.status) {
      const who = r.rec.patient ? ` (${patientName(this.patients.get(r.rec.patient)) || r.rec.patient})` : '';
      this.addEvent('bed', `${bedLabel(r.rec.id)}: ${bedStatusLabel(r.rec.status)}${who}`);
    }
    return true;
  }

  /**
   * Vigil keeps beds and patients in step: the patient an occupied bed names has it on their
   * record, and a patient the bed no longer names has lost it. The ward shows a move as soon as
   * the bed's event arrives, without waiting for the next sync.
   */
  bedMoves({ prev, rec }) {
    let moved = false;
    const occupant = rec.status === 'occupied' && rec.patient ? String(rec.patient) : '';
    const inBed = this.patients.get(occupant);
    if (inBed && String(inBed.bed ?? '') !== rec.id) {
      inBed.bed = rec.id;
      inBed._liveBed = ++this.clock;
      moved = true;
    }
    const left = prev && prev.patient ? String(prev.patient) : '';
    const out = left !== occupant ? this.patients.get(left) : undefined;
    if (out && String(out.bed ?? '') === rec.id) {
      out.bed = '';
      out._liveBed = ++this.clock;
      moved = true;
    }
    if (moved) this.emit('patients');
  }

  upsertStaff(member, { live = false, id } = {}) {
    const r = this.upsertEntity(this.staff, member, id, 'staff');
    if (!r) return false;
    const { prev, rec } = r;
    if (live && prev && (prev.available !== rec.available || prev.on_shift !== rec.on_shift)) {
      const state = !rec.on_shift ? 'off shift' : rec.available ? 'available' : 'busy';
      const role = rec.role ? ` (${rec.role})` : '';
      this.addEvent('staff', `${rec.name || rec.id}${role} is ${state}`);
    }
    return true;
  }

  upsertTriage(c, { live = false, id } = {}) {
    const r = this.upsertEntity(this.triage, c, id, 'triage');
    if (!r) return false;
    const { prev, rec } = r;
    if (live && !prev) {
      const what = rec.complaint ? `: ${rec.complaint}` : '';
      this.addEvent('triage', `New triage case, level ${rec.level} (${triageLevelLabel(rec.level)})${what}`);
    } else if (live && prev && prev.status !== rec.status) {
      this.addEvent('triage', `Triage ${rec.id}: ${triageStatusLabel(rec.status)}`);
    }
    return true;
  }

  /** A queue snapshot: cases not in it left the queue, unless updated after the snapshot. */
  applyTriageQueue(queue, ts) {
    if (!Array.isArray(queue)) return false;
    const snapshot = parseTime(ts);
    return this.batch(() => {
      const ids = new Set();
      for (const c of queue) {
        const r = this.upsertEntity(this.triage, c, undefined, 'triage');
        if (r) ids.add(r.rec.id);
        else if (c && c.id !== undefined) ids.add(String(c.id));
      }
      for (const [id, c] of this.triage) {
        if (ids.has(id)) continue;
        const t = parseTime(c.updated_at);
        if (!Number.isFinite(snapshot) || !Number.isFinite(t) || t <= snapshot) this.triage.delete(id);
      }
      this.emit('triage');
      return true;
    });
  }

  bedList() {
    return [...this.beds.values()].sort((a, b) => compareNatural(a.id, b.id));
  }

  staffList() {
    return [...this.staff.values()].sort(compareStaff);
  }

  /** Open triage cases (not done), most urgent and longest waiting first. */
  triageList() {
    return [...this.triage.values()].filter((c) => c.status !== 'done').sort(compareTriage);
  }

  // ---- devices ----

  applyDevice(id, data, ts, patient) {
    if (!validID(id)) return false;
    const t = parseTime(ts);
    const prev = this.devices.get(id);
    if (prev && Number.isFinite(prev.ts) && Number.isFinite(t) && t < prev.ts) return false;
    const d = data && typeof data === 'object' ? data : {};
    const status = d.status === 'online' || d.status === 'offline' ? d.status : 'unknown';
    this.devices.set(id, { device: id, status, patient: d.patient ?? patient ?? null, ts: t });
    this.emit('devices');
    this.emit('patients');
    return true;
  }

  /** Device state of a patient: online (any device online), offline, unknown, or none. */
  deviceState(p) {
    const ids = new Set(Array.isArray(p.devices) ? p.devices : []);
    for (const d of this.devices.values()) if (d.patient === p.id) ids.add(d.device);
    if (ids.size === 0) return 'none';
    let offline = false;
    for (const id of ids) {
      const d = this.devices.get(id);
      if (d && d.status === 'online') return 'online';
      if (d && d.status === 'offline') offline = true;
    }
    return offline ? 'offline' : 'unknown';
  }
}
