// Patient detail: why the score is what it is (contributions), the vitals chart (history from
// REST, appended live), and the patient's open alerts with Acknowledge / Resolve.

import { errorText } from '../api.js';
import { h, replace, scheduler, setText } from '../dom.js';
import {
  PARAMS,
  bedLabel,
  clockTime,
  formatValue,
  levelClass,
  levelLabel,
  parseTime,
  patientName,
  priorityLabel,
  relTime,
} from '../format.js';
import { icon } from '../icons.js';
import { renderChart } from './chart.js';

const RANGES = [1, 4, 12]; // hours
const HISTORY_LIMIT = 40000;
const RECENT_MS = 3600000;

function sampleKey(x) {
  return `${x.ts}|${x.seq ?? ''}|${x.device ?? ''}`;
}

/**
 * createDetail wires the <dialog>. actions.ack / actions.resolve(alert, note) resolve to an
 * error text ('' on success).
 */
export function createDetail(dialog, { store, api, hospital, canAct, actions, onClose, signal }) {
  let patientId = null;
  let hours = 4;
  let history = []; // samples, oldest first
  let keys = new Set();
  let loading = false;
  let loadError = '';
  let loadSeq = 0;
  const alertErrors = new Map(); // alert id -> error text
  const notes = new Map(); // alert id -> note being typed

  const title = h('h2', { id: 'detail-title', class: 'detail-title' });
  const sub = h('p', { class: 'detail-sub' });
  const badge = h('div', { class: 'score-badge big' });
  const closeBtn = h('button', { type: 'button', class: 'btn btn-quiet close', testid: 'detail-close', 'aria-label': 'Close' }, icon('close'));
  const gone = h('p', { class: 'notice notice-warn', role: 'status', hidden: true }, 'This patient is no longer on the ward (discharged).');
  const contrib = h('div', { class: 'contrib' });
  const rangeBtns = RANGES.map((n) =>
    h('button', { type: 'button', class: 'btn btn-small', testid: `chart-range-${n}`, 'aria-pressed': 'false', onclick: () => setRange(n) }, `${n} h`),
  );
  const chartStatus = h('p', { class: 'chart-status', role: 'status' });
  const chartBox = h('div', { class: 'chart-box' });
  const alertsBox = h('div', { class: 'detail-alerts', testid: 'detail-alerts' });

  replace(
    dialog,
    h(
      'div',
      { class: 'detail-inner' },
      h('header', { class: 'detail-head' }, h('div', {}, title, sub), badge, closeBtn),
      gone,
      h('section', { 'aria-labelledby': 'contrib-title' }, h('h3', { id: 'contrib-title' }, 'NEWS2: how the score is made up'), contrib),
      h(
        'section',
        { 'aria-labelledby': 'chart-title' },
        h('div', { class: 'chart-head' }, h('h3', { id: 'chart-title' }, 'Vitals'), h('div', { class: 'range', role: 'group', 'aria-label': 'Time range' }, rangeBtns)),
        chartStatus,
        chartBox,
      ),
      h('section', { 'aria-labelledby': 'detail-alerts-title' }, h('h3', { id: 'detail-alerts-title' }, 'Open alerts'), alertsBox),
    ),
  );

  closeBtn.addEventListener('click', () => dialog.close());
  dialog.addEventListener(
    'click',
    (ev) => {
      if (ev.target === dialog) dialog.close(); // click on the backdrop
    },
    { signal },
  );
  dialog.addEventListener(
    'close',
    () => {
      // The event comes after the fact: a dialog closed and at once opened again (another
      // hospital's patient from a link) is open by now, and keeps its new patient.
      if (dialog.open) return;
      patientId = null;
      history = [];
      keys = new Set();
      loadSeq++;
      onClose();
    },
    { signal },
  );

  const scheduleChart = scheduler(drawChart);
  const scheduleRender = scheduler(render);

  function setRange(n) {
    if (n === hours) return;
    hours = n;
    loadHistory();
  }

  /** Adds samples (deduplicated), keeping history in time order and within the widest range. */
  function addSamples(list) {
    let unordered = false;
    let added = false;
    for (const x of list) {
      const t = parseTime(x.ts);
      const k = sampleKey(x);
      if (!Number.isFinite(t) || keys.has(k)) continue;
      keys.add(k);
      if (history.length && t < history[history.length - 1]._t) unordered = true;
      history.push({ ...x, _t: t });
      added = true;
    }
    if (!added) return;
    if (unordered) history.sort((a, b) => a._t - b._t);
    const from = Date.now() - RANGES[RANGES.length - 1] * 3600000;
    let drop = 0;
    while (drop < history.length && history[drop]._t < from) drop++;
    drop = Math.max(drop, history.length - HISTORY_LIMIT);
    if (drop > 0) {
      for (const x of history.slice(0, drop)) keys.delete(sampleKey(x));
      history.splice(0, drop);
    }
  }

  async function loadHistory() {
    const p = patientId;
    if (!p) return;
    const seq = ++loadSeq;
    loading = true;
    loadError = '';
    for (const b of rangeBtns) b.setAttribute('aria-pressed', String(b.textContent === `${hours} h`));
    scheduleChart();
    // The history comes oldest first and is capped, so the last hour is fetched on its own:
    // a capped answer can then only lose the middle of a long range, never the recent data.
    const now = Date.now();
    const split = new Date(now - RECENT_MS).toISOString();
    const parts = [api.vitals(hospital(), p, split)];
    if (hours * 3600000 > RECENT_MS) parts.push(api.vitals(hospital(), p, new Date(now - hours * 3600000).toISOString(), { to: split }));
    try {
      const answers = await Promise.all(parts);
      if (seq !== loadSeq || p !== patientId) return;
      for (const items of answers) addSamples(items.filter((x) => x && typeof x === 'object'));
    } catch (err) {
      if (seq !== loadSeq || p !== patientId) return;
      loadError = `Could not load the vitals history: ${errorText(err)}`;
    } finally {
      if (seq === loadSeq) loading = false;
      scheduleChart();
    }
  }

  function drawChart() {
    if (!patientId) return;
    const now = Date.now();
    const p = store.patients.get(patientId);
    const from = now - hours * 3600000;
    replace(chartBox, renderChart(history, { from, to: now, spo2Scale: p?.spo2_scale === 2 ? 2 : 1, now }));
    const n = history.filter((x) => x._t >= from).length;
    setText(chartStatus, loading ? 'Loading history…' : loadError || (n ? '' : 'No vitals in this period.'));
    chartStatus.classList.toggle('is-error', !!loadError);
  }

  function renderContributions(p) {
    const risk = p?.risk;
    const lv = p?.last_vitals || {};
    const missing = new Set(risk?.missing || []);
    const rows = PARAMS.map((param) => {
      const sub = risk?.contributions?.[param.key];
      const isMissing = missing.has(param.key);
      const label = param.key === 'spo2' ? `${param.label} (scale ${p?.spo2_scale === 2 ? 2 : 1})` : param.label;
      const value = formatValue(param.key, lv[param.key]);
      return h(
        'tr',
        { class: isMissing ? 'is-missing' : Number.isFinite(sub) && sub > 0 ? `sub-${Math.min(3, sub)}` : '', testid: `contrib-${param.key}` },
        h('th', { scope: 'row' }, label),
        h('td', {}, value === '—' ? '—' : `${value}${param.unit ? ` ${param.unit}` : ''}`, isMissing ? h('span', { class: 'tag tag-missing' }, 'missing') : null),
        h('td', { class: 'num' }, isMissing ? '—' : Number.isFinite(sub) ? String(sub) : '—'),
      );
    });
    const notes = [];
    if (risk && !risk.complete) {
      notes.push(h('p', { class: 'note' }, `Incomplete: ${risk.missing.length || 'some'} parameter(s) missing or out of date, so the score may understate the risk.`));
    }
    if (risk?.level === 'low-medium') {
      notes.push(h('p', { class: 'note' }, 'Low–medium: a single parameter scores 3 (urgent ward-based response).'));
    }
    if (lv.ts) notes.push(h('p', { class: 'note muted' }, `Last vitals at ${clockTime(parseTime(lv.ts))}.`));
    replace(
      contrib,
      risk
        ? h(
            'table',
            { class: 'contrib-table', testid: 'contributions' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Parameter'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Score'))),
            h('tbody', {}, rows),
            h(
              'tfoot',
              {},
              h('tr', {}, h('th', { scope: 'row' }, 'NEWS2 total'), h('td', {}, levelLabel(risk.level)), h('td', { class: 'num', testid: 'contrib-total' }, Number.isFinite(risk.score) ? String(risk.score) : '—')),
            ),
          )
        : h('p', { class: 'empty', testid: 'contributions' }, 'No NEWS2 score yet for this patient.'),
      notes,
    );
  }

  function alertRow(a) {
    const id = a.id;
    const note = h('input', {
      type: 'text',
      class: 'note-input',
      placeholder: 'Note (optional)',
      'aria-label': `Note for alert ${a.message || id}`,
      value: notes.get(id) || '',
      oninput: (ev) => notes.set(id, ev.target.value),
    });
    const err = alertErrors.get(id);
    const act = async (kind, btn) => {
      btn.disabled = true;
      const e = await actions[kind](a, notes.get(id) || '');
      if (e) alertErrors.set(id, e);
      else {
        alertErrors.delete(id);
        notes.delete(id);
      }
      btn.disabled = false;
      scheduleRender();
    };
    const ackBtn =
      canAct() && a.state === 'active'
        ? h('button', { type: 'button', class: 'btn btn-small', testid: `detail-ack-${id}`, onclick: (ev) => act('ack', ev.currentTarget) }, 'Acknowledge')
        : null;
    const resolveBtn =
      canAct() && a.state !== 'resolved'
        ? h('button', { type: 'button', class: 'btn btn-small', testid: `detail-resolve-${id}`, onclick: (ev) => act('resolve', ev.currentTarget) }, 'Resolve')
        : null;
    return h(
      'li',
      { class: `alert-item prio-${a.priority || 'low'}`, testid: `detail-alert-${id}`, 'data-state': a.state },
      h(
        'div',
        { class: 'alert-main' },
        h('span', { class: `prio-badge prio-${a.priority || 'low'}` }, priorityLabel(a.priority)),
        a.category === 'technical' ? h('span', { class: 'tag tag-tech', title: 'Technical alarm' }, icon('technical'), 'Technical') : null,
        (a.escalation_level ?? 0) > 0 ? h('span', { class: 'tag tag-esc' }, `Escalated ×${a.escalation_level}`) : null,
        h('span', { class: 'alert-msg' }, a.message || a.kind || 'Alert'),
      ),
      h(
        'div',
        { class: 'alert-meta' },
        `${a.state === 'acknowledged' ? `Acknowledged${a.acked_by ? ` by ${a.acked_by}` : ''}` : 'Active'} · raised ${relTime(parseTime(a.raised_at))}`,
      ),
      canAct() && a.state !== 'resolved' ? h('div', { class: 'alert-actions' }, note, ackBtn, resolveBtn) : null,
      err ? h('p', { class: 'field-error', role: 'alert' }, err) : null,
    );
  }

  function render() {
    if (!patientId) return;
    const p = store.patients.get(patientId);
    gone.hidden = !!p || !store.synced.patients;
    const name = p ? patientName(p) : patientId;
    setText(title, p?.bed ? `${bedLabel(p.bed)} · ${name}` : name);
    const admitted = parseTime(p?.admitted_at);
    setText(sub, [`ID ${patientId}`, Number.isFinite(admitted) ? `admitted ${clockTime(admitted)}` : ''].filter(Boolean).join(' · '));
    const risk = p?.risk;
    badge.className = `score-badge big ${levelClass(risk?.level)}`;
    replace(
      badge,
      h('span', { class: 'score', testid: 'detail-score' }, risk && Number.isFinite(risk.score) ? String(risk.score) : '–'),
      h('span', { class: 'level' }, risk ? levelLabel(risk.level) : 'No score'),
    );
    renderContributions(p);
    // Keep the alert rows (and a note being typed) unless the alerts changed.
    const open = store.openAlerts(patientId);
    const sig = JSON.stringify(open.map((a) => [a.id, a.state, a.updated_at, a.escalation_level, alertErrors.get(a.id) || ''])) + canAct();
    if (alertsBox.dataset.sig !== sig) {
      const focused = document.activeElement && alertsBox.contains(document.activeElement) ? document.activeElement.getAttribute('data-testid') : null;
      alertsBox.dataset.sig = sig;
      replace(alertsBox, open.length ? h('ul', { class: 'alert-list' }, open.map(alertRow)) : h('p', { class: 'empty' }, 'No open alerts.'));
      if (focused) alertsBox.querySelector(`[data-testid="${CSS.escape(focused)}"]`)?.focus();
    }
  }

  return {
    get patientId() {
      return patientId;
    },
    open(p) {
      if (patientId === p && dialog.open) return;
      patientId = p;
      history = [];
      keys = new Set();
      alertErrors.clear();
      notes.clear();
      alertsBox.dataset.sig = '';
      render();
      if (!dialog.open) {
        if (typeof dialog.showModal === 'function') dialog.showModal();
        else dialog.setAttribute('open', '');
      }
      loadHistory();
    },
    close() {
      if (dialog.open) dialog.close();
    },
    render: scheduleRender,
    /** A live vitals sample of patient p. */
    onVitals(p, sample) {
      if (p !== patientId) return;
      addSamples([sample]);
      scheduleChart();
    },
    tick() {
      if (patientId) {
        scheduleChart();
        scheduleRender();
      }
    },
  };
}
