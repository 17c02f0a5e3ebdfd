// The alert panel (a dropdown from the bell, as in the earlier design) and the banners that
// make escalations and hospital broadcasts stand out.

import { h, reconcile, replace, setAttr, setText } from '../dom.js';
import { bedLabel, clockTime, parseTime, patientName, priorityLabel, relTime } from '../format.js';
import { icon } from '../icons.js';

const SOURCE_ICON = { bed: 'bed', staff: 'person', triage: 'triage' };

/** Escalation banners shown before the rest fold into "N more". */
const BANNERS_SHOWN = 3;

export function patientLabel(store, id) {
  if (!id) return '';
  const p = store.patients.get(id);
  if (!p) return id;
  return p.bed ? `${bedLabel(p.bed)} · ${patientName(p)}` : patientName(p);
}

function stateText(a) {
  if (a.state === 'acknowledged') return `Acknowledged${a.acked_by ? ` by ${a.acked_by}` : ''}`;
  if (a.state === 'resolved') return `Resolved${a.resolved_by ? ` by ${a.resolved_by}` : ''}`;
  return 'Active';
}

/**
 * createAlertPanel builds the dropdown inside anchor (next to the bell).
 * actions.ack / actions.resolve(alert) resolve to an error text ('' on success);
 * hrefFor(patient) links a row to the patient.
 */
export function createAlertPanel(anchor, { store, bell, canAct, actions, hrefFor, onOpenChange, signal }) {
  const list = h('ul', { class: 'panel-list', testid: 'alert-list' });
  const empty = h('p', { class: 'empty panel-empty', testid: 'alert-empty' }, 'No alerts.');
  const notice = h('p', { class: 'panel-notice', role: 'status' });
  const heading = h('h2', { id: 'alert-panel-title', tabindex: '-1' }, 'Alerts');
  const count = h('span', { class: 'panel-count', testid: 'alert-panel-count' });
  const panel = h(
    'div',
    { id: 'alert-panel', class: 'alert-panel', role: 'dialog', 'aria-labelledby': 'alert-panel-title', testid: 'alert-panel', hidden: true },
    h(
      'div',
      { class: 'panel-head' },
      h('div', { class: 'panel-title' }, heading, count),
      h(
        'div',
        { class: 'panel-tools' },
        h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: 'mark-all-read', onclick: () => store.markAllRead() }, 'Mark all read'),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-quiet',
            testid: 'clear-all',
            onclick: () => {
              const kept = store.clearPanel();
              setText(notice, kept ? `${kept} alert${kept === 1 ? '' : 's'} kept: high and medium alerts stay until acknowledged or resolved.` : '');
            },
          },
          'Clear all',
        ),
      ),
    ),
    h('div', { class: 'panel-body', testid: 'alert-panel-body' }, notice, list, empty),
  );
  anchor.append(panel);

  const errors = new Map(); // item key -> error text
  const busy = new Set(); // item keys with a request in flight

  function setOpen(open) {
    panel.hidden = !open;
    onOpenChange(open);
    if (open) {
      render();
      heading.focus();
    }
  }

  document.addEventListener('click', (ev) => {
    if (panel.hidden) return;
    // composedPath is fixed at dispatch: a button re-rendered by its own handler still counts.
    const path = ev.composedPath();
    if (!path.includes(panel) && !path.includes(bell)) setOpen(false);
  }, { signal });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !panel.hidden) {
      setOpen(false);
      bell.focus();
    }
  }, { signal });

  async function act(kind, item) {
    busy.add(item.key);
    errors.delete(item.key);
    render();
    const err = await actions[kind](item.alert, '');
    busy.delete(item.key);
    if (err) errors.set(item.key, err);
    render();
  }

  function buildAlertRow(el, item) {
    const a = item.alert;
    const id = a.id;
    const technical = a.category === 'technical';
    const prio = a.priority || 'low';
    const time = h('time', { class: 'rel-time', datetime: a.updated_at || a.raised_at || '' });
    time._ts = item.time;
    const err = errors.get(item.key);
    const working = busy.has(item.key);
    const buttons = [];
    if (canAct() && a.state === 'active') {
      buttons.push(h('button', { type: 'button', class: 'btn btn-small', testid: `ack-${id}`, disabled: working, onclick: () => act('ack', item) }, 'Acknowledge'));
    }
    if (canAct() && a.state !== 'resolved') {
      buttons.push(h('button', { type: 'button', class: 'btn btn-small', testid: `resolve-${id}`, disabled: working, onclick: () => act('resolve', item) }, 'Resolve'));
    }
    if (!item.read) {
      buttons.push(h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: `read-${id}`, onclick: () => store.markRead(item.key) }, 'Mark read'));
    }
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-small btn-quiet',
          testid: `remove-${id}`,
          disabled: item.pinned,
          title: item.pinned ? 'High and medium alerts stay until acknowledged or resolved' : 'Remove from this list',
          onclick: () => store.removeItem(item.key),
        },
        'Remove',
      ),
    );
    replace(
      el,
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-icon', title: technical ? 'Technical alarm' : 'Physiological alarm' }, icon(technical ? 'technical' : 'warning')),
        h('span', { class: `prio-badge prio-${prio}` }, priorityLabel(prio)),
        technical ? h('span', { class: 'tag tag-tech', testid: `alert-technical-${id}` }, 'Technical') : null,
        (a.escalation_level ?? 0) > 0 ? h('span', { class: 'tag tag-esc' }, `Escalated ×${a.escalation_level}`) : null,
        time,
      ),
      a.patient ? h('a', { class: 'item-patient', href: hrefFor(a.patient) }, patientLabel(store, a.patient)) : null,
      h('p', { class: 'item-msg' }, a.message || a.kind || 'Alert'),
      h('p', { class: 'item-state', testid: `alert-state-${id}` }, stateText(a)),
      h('div', { class: 'item-actions' }, buttons),
      err ? h('p', { class: 'field-error', role: 'alert', testid: `alert-error-${id}` }, err) : null,
    );
  }

  function buildOtherRow(el, item) {
    const time = h('time', { class: 'rel-time' });
    time._ts = item.time;
    const isBroadcast = item.kind === 'broadcast';
    replace(
      el,
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-icon' }, icon(isBroadcast ? 'broadcast' : SOURCE_ICON[item.source] || 'info')),
        isBroadcast ? h('span', { class: `prio-badge prio-${item.priority}` }, priorityLabel(item.priority)) : null,
        h('span', { class: 'item-kind' }, isBroadcast ? 'Hospital alert' : 'Update'),
        time,
      ),
      h('p', { class: 'item-msg' }, item.message || ''),
      isBroadcast && item.by ? h('p', { class: 'item-state' }, `From ${item.by}`) : null,
      h(
        'div',
        { class: 'item-actions' },
        isBroadcast && !item.read
          ? h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: `read-${item.key.replace(':', '-')}`, onclick: () => store.markRead(item.key) }, 'Mark read')
          : null,
        h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: `remove-${item.key.replace(':', '-')}`, onclick: () => store.removeItem(item.key) }, 'Remove'),
      ),
    );
  }

  function update(el, item) {
    const a = item.alert;
    const sig = JSON.stringify([
      item.read,
      item.pinned,
      item.expiresAt !== null,
      errors.get(item.key) || '',
      busy.has(item.key),
      canAct(),
      a ? [a.state, a.priority, a.escalation_level, a.updated_at, a.message, a.acked_by, a.resolved_by, patientLabel(store, a.patient)] : item.message,
    ]);
    if (el.dataset.sig !== sig) {
      const focused = el.contains(document.activeElement) ? document.activeElement.getAttribute('data-testid') : null;
      el.dataset.sig = sig;
      if (a) buildAlertRow(el, item);
      else buildOtherRow(el, item);
      if (focused) el.querySelector(`[data-testid="${CSS.escape(focused)}"]`)?.focus();
    }
    const prio = a ? a.priority || 'low' : item.priority || 'info';
    // State classes carry an is- prefix: a bare "unread" would also match the bell's badge style.
    setAttr(el, 'class', ['panel-item', `prio-${prio}`, `kind-${item.kind}`, item.read ? 'is-read' : 'is-unread', item.pinned ? 'is-pinned' : '', item.expiresAt !== null ? 'is-fading' : ''].filter(Boolean).join(' '));
    setAttr(el, 'data-read', item.read ? 'true' : 'false');
    if (a) {
      setAttr(el, 'data-state', a.state);
      setAttr(el, 'data-priority', prio);
    }
    updateTime(el);
  }

  function updateTime(el, now = Date.now()) {
    const t = el.querySelector('time.rel-time');
    if (t && Number.isFinite(t._ts)) setText(t, relTime(t._ts, now));
  }

  function render() {
    if (panel.hidden) return;
    const items = store.panelItems();
    reconcile(
      list,
      items,
      (i) => i.key,
      (i) => {
        const testid = i.kind === 'alert' ? `alert-${i.alert.id}` : i.kind === 'broadcast' ? `panel-broadcast-${i.id}` : `panel-${i.key.replace(':', '-')}`;
        return h('li', { testid });
      },
      update,
    );
    empty.hidden = items.length > 0;
    if (!items.length) setText(notice, '');
    const unread = items.filter((i) => !i.read && i.kind !== 'event').length;
    setText(count, items.length ? `${unread} unread of ${items.length}` : '');
  }

  return {
    render,
    toggle() {
      setOpen(panel.hidden);
    },
    close() {
      if (!panel.hidden) setOpen(false);
    },
    get open() {
      return !panel.hidden;
    },
    /** Refreshes the relative times ("now", "5m ago"); called every 10 s. */
    tickTimes(now) {
      if (panel.hidden) return;
      for (const el of list.children) updateTime(el, now);
    },
  };
}

/** createBanners renders escalations and hospital broadcasts above the ward. */
export function createBanners(root, { store, canAct, actions, hrefFor }) {
  const errors = new Map();
  let expanded = false; // show every escalation, not only the first BANNERS_SHOWN

  function escalationRow(el, a) {
    const raised = clockTime(parseTime(a.raised_at)); // not relative: the banner is a live region
    const sig = JSON.stringify([a.escalation_level, a.priority, a.message, a.updated_at, errors.get(a.id) || '', canAct(), patientLabel(store, a.patient), raised]);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    setAttr(el, 'class', `banner banner-escalation prio-${a.priority || 'low'}`);
    replace(
      el,
      h(
        'span',
        { class: 'banner-lead' },
        h('strong', { class: 'banner-kind' }, `Escalated ×${a.escalation_level}`),
        h('span', { class: `prio-badge prio-${a.priority || 'low'}` }, priorityLabel(a.priority)),
      ),
      h(
        'span',
        { class: 'banner-text' },
        a.patient ? h('a', { class: 'banner-patient', href: hrefFor(a.patient) }, patientLabel(store, a.patient)) : null,
        h('span', { class: 'banner-msg' }, a.message || a.kind || 'Alert'),
        raised ? h('span', { class: 'banner-time' }, `raised at ${raised}`) : null,
      ),
      h(
        'span',
        { class: 'banner-actions' },
        canAct()
          ? h(
              'button',
              {
                type: 'button',
                class: 'btn btn-small',
                testid: `banner-ack-${a.id}`,
                onclick: async (ev) => {
                  ev.currentTarget.disabled = true;
                  const err = await actions.ack(a, '');
                  if (err) errors.set(a.id, err);
                  else errors.delete(a.id);
                  el.dataset.sig = '';
                  render();
                },
              },
              'Acknowledge',
            )
          : null,
        h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: `banner-hide-${a.id}`, onclick: () => store.hideEscalation(a.id) }, 'Hide'),
      ),
      errors.get(a.id) ? h('span', { class: 'banner-error', role: 'alert' }, errors.get(a.id)) : null,
    );
  }

  function broadcastRow(el, b) {
    if (el.dataset.sig) return;
    el.dataset.sig = '1';
    replace(
      el,
      h(
        'span',
        { class: 'banner-lead' },
        h('strong', { class: 'banner-kind' }, 'Hospital alert'),
        h('span', { class: `prio-badge prio-${b.priority}` }, priorityLabel(b.priority)),
      ),
      h('span', { class: 'banner-text' }, h('span', { class: 'banner-msg' }, b.message), b.by ? h('span', { class: 'banner-time' }, `from ${b.by}`) : null),
      h(
        'span',
        { class: 'banner-actions' },
        h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: `broadcast-dismiss-${b.id}`, onclick: () => store.dismissBanner(b.id) }, 'Dismiss'),
      ),
    );
  }

  // A busy ward can have many escalations at once: the most escalated stay in view and the
  // rest fold into one row, so the banners never push the ward off the screen.
  function moreRow(el, folded) {
    const sig = JSON.stringify([folded, expanded]);
    if (el.dataset.sig === sig) return;
    el.dataset.sig = sig;
    replace(
      el,
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-small btn-quiet',
          testid: 'banners-toggle',
          'aria-expanded': expanded ? 'true' : 'false',
          onclick: () => {
            expanded = !expanded;
            render();
          },
        },
        expanded ? 'Show fewer escalations' : `${folded} more escalated alert${folded === 1 ? '' : 's'}: show all`,
      ),
    );
  }

  function render() {
    const esc = store.escalations();
    const folded = Math.max(0, esc.length - BANNERS_SHOWN);
    if (!folded) expanded = false;
    const rows = [
      ...esc.map((a, i) => ({ key: `esc:${a.id}`, a, fold: !expanded && i >= BANNERS_SHOWN })),
      ...(folded ? [{ key: 'more', more: folded }] : []),
      ...store.bannerList().map((b) => ({ key: `bc:${b.id}`, b })),
    ];
    reconcile(
      root,
      rows,
      (r) => r.key,
      (r) => {
        if (r.a) return h('div', { class: `banner banner-escalation prio-${r.a.priority || 'low'}`, testid: `escalation-${r.a.id}` });
        if (r.more) return h('div', { class: 'banner banner-more', testid: 'banners-more' });
        return h('div', { class: `banner banner-broadcast prio-${r.b.priority}${r.b.expiresAt !== null ? ' fading' : ''}`, testid: `broadcast-${r.b.id}` });
      },
      (el, r) => {
        if (r.a) {
          escalationRow(el, r.a);
          el.hidden = r.fold;
        } else if (r.more) moreRow(el, r.more);
        else broadcastRow(el, r.b);
      },
    );
    root.hidden = rows.length === 0;
    root.dataset.count = String(esc.length);
  }

  return { render };
}
