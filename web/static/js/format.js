// Formatting and ordering helpers shared by the views. Pure functions, no DOM.

/** Vitals older than this are marked stale on the ward (NEWS2 freshness of continuous signs). */
export const STALE_MS = 5 * 60 * 1000;

/** How long informational items stay in the alert panel and banners. */
export const FADE_MS = 10 * 1000;

/** NEWS2 parameters in the order of the RCP chart, with display labels. */
export const PARAMS = [
  { key: 'rr', label: 'Respiration rate', short: 'RR', unit: '/min' },
  { key: 'spo2', label: 'SpO₂', short: 'SpO₂', unit: '%' },
  { key: 'o2', label: 'Air or oxygen', short: 'O₂', unit: '' },
  { key: 'sbp', label: 'Systolic BP', short: 'SBP', unit: 'mmHg' },
  { key: 'hr', label: 'Pulse', short: 'HR', unit: '/min' },
  { key: 'acvpu', label: 'Consciousness', short: 'ACVPU', unit: '' },
  { key: 'temp', label: 'Temperature', short: 'Temp', unit: '°C' },
];

/** A lookup table without a prototype, so keys like "toString" from the network miss. */
function table(obj) {
  return Object.freeze(Object.assign(Object.create(null), obj));
}

const PARAM_BY_KEY = new Map(PARAMS.map((p) => [p.key, p]));

export function paramLabel(key) {
  return PARAM_BY_KEY.get(key)?.label ?? String(key);
}

export function paramShort(key) {
  return PARAM_BY_KEY.get(key)?.short ?? String(key);
}

const LEVEL_LABELS = table({ low: 'Low', 'low-medium': 'Low–medium', medium: 'Medium', high: 'High' });

/** Human label of a NEWS2 clinical-risk level. */
export function levelLabel(level) {
  return LEVEL_LABELS[level] ?? 'No score';
}

/** CSS class carrying a level's colour (low green, low-medium yellow, medium orange, high red). */
export function levelClass(level) {
  return level in LEVEL_LABELS ? `lvl-${level}` : 'lvl-none';
}

const PRIORITY_RANK = table({ high: 3, medium: 2, low: 1 });

export function priorityRank(priority) {
  return PRIORITY_RANK[priority] ?? 0;
}

export function priorityLabel(priority) {
  return priority in PRIORITY_RANK ? priority[0].toUpperCase() + priority.slice(1) : 'Info';
}

const STATE_RANK = table({ active: 1, acknowledged: 2, resolved: 3 });

export function stateRank(state) {
  return STATE_RANK[state] ?? 0;
}

/** Parses an RFC 3339 time (or epoch milliseconds) to epoch milliseconds; NaN when absent. */
export function parseTime(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? value : NaN;
  if (typeof value !== 'string' || value === '') return NaN;
  return Date.parse(value);
}

/** Relative time as the alert panel shows it: "now", "5m ago", "2h ago", "3d ago". */
export function relTime(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return 'now';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ago`;
  return `${Math.floor(h / 24)}d ago`;
}

/** Age of a reading with seconds resolution: "12 s ago", "3 min ago", "2 h ago". */
export function ageText(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return 'no data';
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** Duration in compact form for waiting times: "45 s", "12 min", "3 h 5 min". */
export function durationText(ms) {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

/** Local clock time "14:05" (or "Nov 3 14:05" when not today). */
export function clockTime(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  const hhmm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  if (new Date(now).toDateString() === d.toDateString()) return hhmm;
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${hhmm}`;
}

/** Displays one vital sign value. */
export function formatValue(key, value) {
  if (value === undefined || value === null || value === '') return '—';
  if (key === 'o2') return value ? 'Oxygen' : 'Air';
  if (key === 'acvpu') return String(value);
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  if (key === 'temp') return value.toFixed(1);
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Natural order: "2" before "10", "bed-2" before "bed-10". */
export function compareNatural(a, b) {
  return collator.compare(String(a ?? ''), String(b ?? ''));
}

/** Ward order: by bed (patients without a bed last), then by patient ID. */
export function comparePatients(a, b) {
  const ab = a.bed ? String(a.bed) : '';
  const bb = b.bed ? String(b.bed) : '';
  if (ab !== bb) {
    if (!ab) return 1;
    if (!bb) return -1;
    const c = compareNatural(ab, bb);
    if (c) return c;
  }
  return compareNatural(a.id, b.id);
}

/** Triage order: level 1 (most urgent) first, then longest waiting. */
export function compareTriage(a, b) {
  const la = Number.isFinite(a.level) ? a.level : 99;
  const lb = Number.isFinite(b.level) ? b.level : 99;
  if (la !== lb) return la - lb;
  const ta = parseTime(a.created_at);
  const tb = parseTime(b.created_at);
  if (ta !== tb) {
    if (Number.isNaN(ta)) return 1;
    if (Number.isNaN(tb)) return -1;
    return ta - tb;
  }
  return compareNatural(a.id, b.id);
}

/** Staff order: on shift and available first, then by name. */
export function compareStaff(a, b) {
  const ra = (a.on_shift ? 0 : 2) + (a.available ? 0 : 1);
  const rb = (b.on_shift ? 0 : 2) + (b.available ? 0 : 1);
  if (ra !== rb) return ra - rb;
  return compareNatural(a.name || a.id, b.name || b.id) || compareNatural(a.id, b.id);
}

const TRIAGE_LEVELS = table({
  1: 'Immediate',
  2: 'Very urgent',
  3: 'Urgent',
  4: 'Standard',
  5: 'Non-urgent',
});

export function triageLevelLabel(level) {
  return TRIAGE_LEVELS[level] ?? 'Unknown';
}

const TRIAGE_STATUS = table({
  waiting: 'Waiting',
  in_assessment: 'In assessment',
  assigned: 'Assigned',
  done: 'Done',
});

export function triageStatusLabel(status) {
  return TRIAGE_STATUS[status] ?? String(status ?? '');
}

const BED_STATUS = table({ free: 'Free', occupied: 'Occupied', cleaning: 'Cleaning', blocked: 'Blocked' });

export function bedStatusLabel(status) {
  return BED_STATUS[status] ?? 'Unknown';
}

/** A bed as the ward shows it: "Bed 4", or the ID alone when it already says bed ("bed-04"). */
export function bedLabel(bed) {
  if (bed === undefined || bed === null || bed === '') return '';
  const b = String(bed);
  return /^bed(?![a-z])/i.test(b) ? b : `Bed ${b}`;
}

/** Patient display name: "Jane Doe" or the ID when the name is not known yet. */
export function patientName(p) {
  if (!p) return '';
  return p.name || p.id || '';
}
