// The header: brand, hospital selector, user, connection indicator, alert bell, logout.

import { h, replace, setAttr, setText } from '../dom.js';
import { icon } from '../icons.js';
import { validID } from '../topics.js';

/**
 * Hospital chooser for a user: admins type any hospital ID (with the recently used ones and
 * their own offered); users of several hospitals pick from a list; a single hospital is text.
 */
export function hospitalChooser({ user, current, recent, onChoose, idPrefix = 'hospital' }) {
  const own = Array.isArray(user.hospitals) ? user.hospitals.filter(validID) : [];
  if (user.role === 'admin') {
    const listId = `${idPrefix}-recent`;
    const options = [...new Set([...recent, ...own])].filter(validID);
    const input = h('input', {
      id: `${idPrefix}-input`,
      class: 'hospital-input',
      type: 'text',
      value: current || options[0] || '',
      list: listId,
      placeholder: 'Hospital ID',
      autocomplete: 'off',
      spellcheck: 'false',
      pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}',
      required: true,
      testid: `${idPrefix}-input`,
      'aria-label': 'Hospital ID',
    });
    const err = h('span', { class: 'field-error', role: 'alert', hidden: true });
    return h(
      'form',
      {
        class: 'hospital-form',
        novalidate: true,
        onsubmit: (ev) => {
          ev.preventDefault();
          const v = input.value.trim();
          if (!validID(v)) {
            err.textContent = 'Hospital IDs are letters, digits, ".", "_" or "-" (up to 64).';
            err.hidden = false;
            input.setAttribute('aria-invalid', 'true');
            input.focus();
            return;
          }
          err.hidden = true;
          input.removeAttribute('aria-invalid');
          onChoose(v);
        },
      },
      input,
      h('datalist', { id: listId }, options.map((o) => h('option', { value: o }))),
      h('button', { type: 'submit', class: 'btn', testid: `${idPrefix}-open` }, 'Open'),
      err,
    );
  }
  if (own.length > 1) {
    const select = h(
      'select',
      {
        id: `${idPrefix}-select`,
        class: 'hospital-select',
        testid: `${idPrefix}-select`,
        'aria-label': 'Hospital',
        onchange: () => select.value && onChoose(select.value),
      },
      current ? null : h('option', { value: '' }, 'Choose a hospital…'),
      own.map((o) => h('option', { value: o, selected: o === current }, o)),
    );
    return select;
  }
  return h('span', { class: 'hospital-name' }, own[0] || 'No hospital');
}

const CONN_TEXT = { connected: 'Live', reconnecting: 'Reconnecting', offline: 'Offline' };

export function createHeader(root, { user, recent, onHospital, onLogout, onBell }) {
  const hospitalSlot = h('div', { class: 'hospital-slot' });
  const hospitalArea = h('div', { class: 'hospital-area', testid: 'hospital' }, h('span', { class: 'label' }, 'Hospital'), hospitalSlot);
  const connText = h('span', { class: 'conn-text' });
  // The countdown changes every second, so only state changes go to the live region.
  const connLive = h('span', { class: 'sr-only', role: 'status' });
  const conn = h(
    'div',
    { class: 'conn', testid: 'conn', 'data-state': 'offline' },
    h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
    connText,
    connLive,
  );
  const unread = h('span', { class: 'bell-badge', testid: 'unread', hidden: true }, '0');
  const bell = h(
    'button',
    {
      type: 'button',
      class: 'bell',
      testid: 'bell',
      'aria-haspopup': 'dialog',
      'aria-expanded': 'false',
      'aria-controls': 'alert-panel',
      'aria-label': 'Alerts',
      onclick: () => onBell(),
    },
    icon('bell', 'bell-icon'),
    unread,
  );
  const panelAnchor = h('div', { class: 'bell-wrap' }, bell);

  replace(
    root,
    h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Vigil'),
    hospitalArea,
    h('div', { class: 'spacer' }),
    conn,
    panelAnchor,
    h('span', { class: 'user', testid: 'user', title: `Role: ${user.role}` }, user.username, h('span', { class: 'role' }, user.role)),
    h('button', { type: 'button', class: 'btn btn-quiet', testid: 'logout', onclick: () => onLogout() }, 'Log out'),
  );

  let status = { state: 'offline', nextRetryAt: null, reason: '' };

  function renderConn(now = Date.now()) {
    let text = CONN_TEXT[status.state] || 'Offline';
    if (status.state === 'reconnecting') {
      if (status.nextRetryAt) text = `Reconnecting in ${Math.max(0, Math.ceil((status.nextRetryAt - now) / 1000))} s`;
      else text = 'Reconnecting…';
    }
    setText(connText, text);
    setText(connLive, `Connection: ${CONN_TEXT[status.state] || 'Offline'}`);
    setAttr(conn, 'data-state', status.state);
    setAttr(conn, 'title', status.reason || text);
  }

  return {
    bell,
    panelAnchor,
    setHospital(hospital) {
      replace(hospitalSlot, hospitalChooser({ user, current: hospital, recent: recent(), onChoose: onHospital }));
      setAttr(hospitalArea, 'data-hospital', hospital || '');
    },
    setConn(s) {
      status = s;
      renderConn();
    },
    setUnread(n) {
      setText(unread, String(n));
      unread.hidden = n === 0;
      setAttr(bell, 'data-unread', String(n));
      setAttr(bell, 'aria-label', n ? `Alerts, ${n} unread` : 'Alerts');
    },
    setPanelOpen(open) {
      setAttr(bell, 'aria-expanded', open ? 'true' : 'false');
    },
    tick(now) {
      if (status.state === 'reconnecting' && status.nextRetryAt) renderConn(now);
    },
  };
}
