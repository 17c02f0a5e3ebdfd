// The ward: one card per patient, ordered by bed then ID, with the live NEWS2 score.

import { h, reconcile, replace, setAttr, setText } from '../dom.js';
import {
  STALE_MS,
  ageText,
  bedLabel,
  formatValue,
  levelClass,
  levelLabel,
  paramShort,
  parseTime,
  patientName,
} from '../format.js';

const CARD_PARAMS = ['hr', 'rr', 'spo2', 'sbp', 'temp', 'o2', 'acvpu'];
const DEVICE_TEXT = {
  online: 'Monitor online',
  offline: 'Monitor offline',
  unknown: 'Monitor status unknown',
  none: 'No monitor',
};

function createCard(p, hrefFor) {
  const parts = {
    bed: h('span', { class: 'bed' }),
    name: h('span', { class: 'name' }),
    score: h('span', { class: 'score', testid: `score-${p.id}` }),
    level: h('span', { class: 'level' }),
    badge: null,
    values: new Map(),
    deviceDot: h('span', { class: 'device-dot', 'aria-hidden': 'true' }),
    deviceText: h('span', { class: 'device-text' }),
    age: h('span', { class: 'age', testid: `age-${p.id}` }),
    alerts: h('span', { class: 'alert-count', testid: `alerts-${p.id}` }),
    missing: h('p', { class: 'missing', testid: `missing-${p.id}` }),
  };
  parts.badge = h('span', { class: 'score-badge' }, parts.score, parts.level);
  const vitals = h('dl', { class: 'card-vitals' });
  for (const k of CARD_PARAMS) {
    const dd = h('dd', { testid: `vital-${p.id}-${k}` });
    parts.values.set(k, dd);
    vitals.append(h('div', { class: 'vital' }, h('dt', {}, paramShort(k)), dd));
  }
  const el = h(
    'a',
    { class: 'card', href: hrefFor(p.id), testid: `patient-${p.id}` },
    h('div', { class: 'card-top' }, parts.bed, parts.name, parts.badge),
    vitals,
    h('div', { class: 'card-foot' }, h('span', { class: 'device' }, parts.deviceDot, parts.deviceText), parts.age, parts.alerts),
    parts.missing,
  );
  el._parts = parts;
  return el;
}

function updateCard(el, p, store, now) {
  const parts = el._parts;
  const risk = p.risk;
  const lvl = levelClass(risk?.level);
  setAttr(el, 'class', `card ${lvl}`);
  setText(parts.bed, p.bed ? bedLabel(p.bed) : 'No bed');
  setText(parts.name, patientName(p));
  setAttr(parts.name, 'title', p.name ? `${p.name} (${p.id})` : p.id);
  setText(parts.score, risk && Number.isFinite(risk.score) ? String(risk.score) : '–');
  setText(parts.level, risk ? levelLabel(risk.level) : 'No score');
  setAttr(parts.badge, 'class', `score-badge ${lvl}`);
  setAttr(parts.badge, 'aria-label', risk && Number.isFinite(risk.score) ? `NEWS2 ${risk.score}, ${levelLabel(risk.level)} risk` : 'No NEWS2 score');

  const lv = p.last_vitals || {};
  const missing = new Set(risk?.missing || []);
  for (const [k, dd] of parts.values) {
    setText(dd, formatValue(k, lv[k]));
    const sub = risk?.contributions?.[k];
    const cls = [missing.has(k) ? 'is-missing' : '', Number.isFinite(sub) && sub > 0 ? `sub-${Math.min(3, sub)}` : ''];
    setAttr(dd, 'class', cls.filter(Boolean).join(' ') || null);
  }

  const dev = store.deviceState(p);
  setAttr(parts.deviceDot, 'class', `device-dot dev-${dev}`);
  setText(parts.deviceText, DEVICE_TEXT[dev]);

  el._ts = parseTime(lv.ts);
  updateAge(el, now);

  const { count, priority } = store.alertSummary(p);
  setText(parts.alerts, count === 1 ? '1 open alert' : `${count} open alerts`);
  setAttr(parts.alerts, 'class', `alert-count${count ? ' has-alerts' : ''}${priority ? ` prio-${priority}` : ''}`);
  setAttr(parts.alerts, 'data-count', String(count));

  const miss = risk?.missing || [];
  setText(parts.missing, miss.length ? `Missing: ${miss.map(paramShort).join(', ')}` : '');
  parts.missing.hidden = miss.length === 0;
}

function updateAge(el, now) {
  const parts = el._parts;
  const ts = el._ts;
  const stale = !Number.isFinite(ts) || now - ts > STALE_MS;
  setText(parts.age, Number.isFinite(ts) ? `Vitals ${ageText(ts, now)}${stale ? ' (stale)' : ''}` : 'No vitals yet');
  setAttr(parts.age, 'class', stale ? 'age is-stale' : 'age');
  el.classList.toggle('stale', stale);
}

export function createWard(root, { store, hrefFor }) {
  const title = h('h2', { class: 'section-title', id: 'ward-title' }, 'Ward');
  const summary = h('p', { class: 'ward-summary', testid: 'ward-summary' });
  const stale = h('p', { class: 'stale-note', role: 'status', testid: 'ward-paused', hidden: true }, 'Live updates paused: refreshed every 30 s meanwhile; what you see may be a little out of date.');
  const grid = h('div', { class: 'ward-grid', testid: 'ward', 'aria-labelledby': 'ward-title' });
  const empty = h('p', { class: 'empty', testid: 'ward-empty', hidden: true });
  replace(root, h('div', { class: 'ward-head' }, title, summary), stale, grid, empty);

  return {
    render() {
      const now = Date.now();
      const list = store.patientList();
      reconcile(
        grid,
        list,
        (p) => p.id,
        (p) => createCard(p, hrefFor),
        (el, p) => updateCard(el, p, store, now),
      );
      const counts = { high: 0, medium: 0, 'low-medium': 0 };
      for (const p of list) if (p.risk && Object.hasOwn(counts, p.risk.level)) counts[p.risk.level]++;
      const bits = [`${list.length} patient${list.length === 1 ? '' : 's'}`];
      if (counts.high) bits.push(`${counts.high} high`);
      if (counts.medium) bits.push(`${counts.medium} medium`);
      if (counts['low-medium']) bits.push(`${counts['low-medium']} low–medium`);
      setText(summary, bits.join(' · '));
      empty.hidden = list.length > 0;
      setText(empty, store.synced.patients ? 'No patients admitted.' : 'Loading patients…');
    },
    tick(now) {
      for (const el of grid.children) if (el._parts) updateAge(el, now);
    },
    setLive(connected) {
      stale.hidden = connected;
      root.classList.toggle('is-paused', !connected);
    },
  };
}
