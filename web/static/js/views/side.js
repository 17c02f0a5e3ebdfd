// Side panel tabs: triage queue, bed board, staff availability. All live from their topics.

import { h, reconcile, replace, setAttr, setText } from '../dom.js';
import {
  bedStatusLabel,
  durationText,
  parseTime,
  patientName,
  relTime,
  triageLevelLabel,
  triageStatusLabel,
} from '../format.js';
import { patientLabel } from './alerts.js';

const TABS = [
  { id: 'triage', label: 'Triage' },
  { id: 'beds', label: 'Beds' },
  { id: 'staff', label: 'Staff' },
];

export function createSide(root, { store, hrefFor }) {
  const tabs = new Map();
  const panels = new Map();
  const counts = new Map();
  for (const t of TABS) {
    const count = h('span', { class: 'tab-count' });
    counts.set(t.id, count);
    tabs.set(
      t.id,
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${t.id}`,
          class: 'tab',
          testid: `tab-${t.id}`,
          'aria-controls': `${t.id}-panel`,
          'aria-selected': 'false',
          tabindex: '-1',
          onclick: () => select(t.id),
        },
        t.label,
        ' ',
        count,
      ),
    );
    panels.set(t.id, h('div', { role: 'tabpanel', id: `${t.id}-panel`, class: 'tab-panel', testid: `${t.id}-panel`, 'aria-labelledby': `tab-${t.id}`, tabindex: '0', hidden: true }));
  }
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Hospital status' }, [...tabs.values()]);
  tablist.addEventListener('keydown', (ev) => {
    const ids = TABS.map((t) => t.id);
    const i = ids.indexOf(current);
    let next = null;
    if (ev.key === 'ArrowRight') next = ids[(i + 1) % ids.length];
    else if (ev.key === 'ArrowLeft') next = ids[(i + ids.length - 1) % ids.length];
    else if (ev.key === 'Home') next = ids[0];
    else if (ev.key === 'End') next = ids[ids.length - 1];
    if (next) {
      ev.preventDefault();
      select(next);
      tabs.get(next).focus();
    }
  });
  replace(root, tablist, [...panels.values()]);

  let current = 'triage';
  function select(id) {
    current = id;
    for (const [tid, tab] of tabs) {
      const on = tid === id;
      setAttr(tab, 'aria-selected', on ? 'true' : 'false');
      setAttr(tab, 'tabindex', on ? '0' : '-1');
      panels.get(tid).hidden = !on;
    }
  }
  select('triage');

  // ---- triage ----
  const triageList = h('ol', { class: 'triage-list', testid: 'triage-list' });
  const triageEmpty = h('p', { class: 'empty' });
  replace(panels.get('triage'), triageList, triageEmpty);

  function updateTriage(el, c, now) {
    const waited = now - parseTime(c.created_at);
    const sig = JSON.stringify([c.level, c.complaint, c.patient, c.status, c.assignee, c.updated_at, patientLabel(store, c.patient)]);
    if (el.dataset.sig !== sig) {
      el.dataset.sig = sig;
      setAttr(el, 'class', `triage-item tri-${c.level}`);
      setAttr(el, 'data-level', String(c.level ?? ''));
      setAttr(el, 'data-status', c.status || '');
      replace(
        el,
        h('span', { class: `tri-badge tri-${c.level}`, title: triageLevelLabel(c.level) }, String(c.level ?? '?')),
        h(
          'div',
          { class: 'triage-body' },
          h('p', { class: 'triage-complaint' }, c.complaint || 'No complaint recorded'),
          h(
            'p',
            { class: 'triage-meta' },
            triageLevelLabel(c.level),
            ' · ',
            triageStatusLabel(c.status),
            c.assignee ? ` · ${c.assignee}` : '',
            c.patient ? ' · ' : '',
            c.patient ? (store.patients.has(c.patient) ? h('a', { href: hrefFor(c.patient) }, patientLabel(store, c.patient)) : c.patient) : null,
          ),
        ),
        h('span', { class: 'triage-wait', title: 'Waiting time' }),
      );
    }
    setText(el.querySelector('.triage-wait'), Number.isFinite(waited) ? durationText(waited) : '');
  }

  function renderTriage() {
    const now = Date.now();
    const list = store.triageList();
    reconcile(triageList, list, (c) => c.id, (c) => h('li', { testid: `triage-${c.id}` }), (el, c) => updateTriage(el, c, now));
    setText(counts.get('triage'), String(list.length));
    triageEmpty.hidden = list.length > 0;
    setText(triageEmpty, store.synced.triage ? 'Nobody waiting.' : 'Loading…');
  }

  // ---- beds ----
  const bedSummary = h('p', { class: 'bed-summary', testid: 'bed-summary' });
  const bedGrid = h('ul', { class: 'bed-grid', testid: 'bed-list' });
  const bedEmpty = h('p', { class: 'empty' });
  replace(panels.get('beds'), bedSummary, bedGrid, bedEmpty);

  function updateBed(el, b) {
    const who = b.patient ? patientName(store.patients.get(b.patient)) || b.patient : '';
    const sig = JSON.stringify([b.status, who, b.updated_at]);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    setAttr(el, 'class', `bed-tile bed-${b.status || 'unknown'}`);
    setAttr(el, 'data-status', b.status || '');
    replace(
      el,
      h('span', { class: 'bed-id' }, b.id),
      h('span', { class: 'bed-status' }, bedStatusLabel(b.status)),
      who ? h('span', { class: 'bed-patient' }, who) : null,
    );
  }

  function renderBeds() {
    const list = store.bedList();
    reconcile(bedGrid, list, (b) => b.id, (b) => h('li', { testid: `bed-${b.id}` }), updateBed);
    const n = { free: 0, occupied: 0, cleaning: 0, blocked: 0 };
    for (const b of list) if (Object.hasOwn(n, b.status)) n[b.status]++;
    setText(bedSummary, list.length ? `${n.free} free · ${n.occupied} occupied · ${n.cleaning} cleaning · ${n.blocked} blocked` : '');
    setText(counts.get('beds'), list.length ? `${n.free} free` : '');
    bedEmpty.hidden = list.length > 0;
    setText(bedEmpty, store.synced.beds ? 'No beds recorded.' : 'Loading…');
  }

  // ---- staff ----
  const staffList = h('ul', { class: 'staff-list', testid: 'staff-list' });
  const staffEmpty = h('p', { class: 'empty' });
  replace(panels.get('staff'), staffList, staffEmpty);

  function updateStaff(el, m, now) {
    const state = !m.on_shift ? 'off' : m.available ? 'available' : 'busy';
    const since = relTime(parseTime(m.updated_at), now);
    const sig = JSON.stringify([m.name, m.role, state, since]);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    setAttr(el, 'class', `staff-item staff-${state}`);
    setAttr(el, 'data-state', state);
    replace(
      el,
      h('span', { class: 'staff-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'staff-name' }, m.name || m.id),
      h('span', { class: 'staff-role' }, m.role || ''),
      h('span', { class: 'staff-state' }, state === 'off' ? 'Off shift' : state === 'available' ? 'Available' : 'Busy'),
      since ? h('span', { class: 'staff-since' }, since) : null,
    );
  }

  function renderStaff() {
    const now = Date.now();
    const list = store.staffList();
    reconcile(staffList, list, (m) => m.id, (m) => h('li', { testid: `staff-${m.id}` }), (el, m) => updateStaff(el, m, now));
    const avail = list.filter((m) => m.on_shift && m.available).length;
    setText(counts.get('staff'), list.length ? `${avail} available` : '');
    staffEmpty.hidden = list.length > 0;
    setText(staffEmpty, store.synced.staff ? 'No staff recorded.' : 'Loading…');
  }

  return {
    renderTriage,
    renderBeds,
    renderStaff,
    tick() {
      renderTriage();
      renderStaff();
    },
  };
}
