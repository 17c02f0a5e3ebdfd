// Vigil clinician dashboard: wires the session, the REST client, the live MQTT connection,
// the store and the views. Route: #h=<hospital>&p=<patient> (the patient opens its detail).

import { createApi, errorText } from './api.js';
import { h, replace, scheduler } from './dom.js';
import { Live } from './mqtt.js';
import {
  canHandleAlerts,
  clearSession,
  expiryOf,
  loadSession,
  recentHospitals,
  rememberHospital,
  saveSession,
  savedHospital,
  sessionFrom,
} from './session.js';
import { Store } from './store.js';
import { validID } from './topics.js';
import { createAlertPanel, createBanners } from './views/alerts.js';
import { createDetail } from './views/detail.js';
import { createHeader, hospitalChooser } from './views/header.js';
import { renderLogin } from './views/login.js';
import { createSide } from './views/side.js';
import { createWard } from './views/ward.js';

/** Go back to the login screen this long before the token expires. */
const EXPIRY_MARGIN_MS = 30 * 1000;
/** Without MQTT.js (assets not built), poll the REST API this often instead. */
const POLL_MS = 30 * 1000;

const $ = (id) => document.getElementById(id);

const store = new Store();
let current = null; // the session: {token, expires_at, user}
let hospital = '';
let hospitalGen = 0; // bumped on every hospital change, to drop late answers
let live = null;
let ui = null;
let uiAbort = null;
let unsubs = [];
let ticker = null;
let pollTimer = null;
let refreshTimer = null;
let lastSessionCheck = 0;
let syncing = null;
// Broadcasts sent from a minute before the hospital was chosen on are shown when a sync finds
// them (those sent while the page was not listening); later ones come live.
let broadcastsSince = 0;
let syncAgain = false;
let connStatus = { state: 'offline', nextRetryAt: null, reason: '' };

const api = createApi({
  getToken: () => current?.token || '',
  onUnauthorized: () => {
    if (current) logout('Your session has ended. Please log in again.');
  },
});

// ---- routing ----

function parseHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  return { h: q.get('h') || '', p: q.get('p') || '' };
}

function hrefFor(patient) {
  const q = new URLSearchParams();
  if (hospital) q.set('h', hospital);
  if (patient) q.set('p', patient);
  return `#${q}`;
}

function allowed(h) {
  if (!validID(h) || !current) return false;
  const hs = current.user.hospitals || [];
  return current.user.role === 'admin' || hs.includes(h) || hs.includes('*');
}

function onRoute() {
  if (!current || !ui) return;
  const r = parseHash();
  if (r.h && r.h !== hospital && allowed(r.h)) selectHospital(r.h);
  if (!hospital) return;
  if (r.p && validID(r.p)) {
    ui.panel.close();
    ui.detail.open(r.p);
  } else {
    ui.detail.close();
  }
}

// ---- notices ----

function notice(key, text, level = 'warn') {
  const root = $('notices');
  let el = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!text) {
    el?.remove();
    return;
  }
  if (!el) {
    el = h('p', { class: `notice notice-${level}`, testid: `notice-${key}` });
    el.dataset.key = key;
    root.append(el);
  }
  el.textContent = text;
}

function clearNotices() {
  replace($('notices'));
}

// ---- session ----

function showLogin(message) {
  $('app-view').hidden = true;
  const root = $('login-view');
  root.hidden = false;
  document.title = 'Vigil · Log in';
  renderLogin(root, {
    message,
    login: async (username, password) => {
      const answer = await api.login(username, password);
      const s = sessionFrom(answer, username);
      const exp = expiryOf(s);
      if (Number.isFinite(exp) && exp - Date.now() <= EXPIRY_MARGIN_MS) {
        throw new Error('The server issued a token that expires at once: check the clocks of this computer and the server.');
      }
      saveSession(s);
      current = s;
      enterApp();
    },
  });
}

function logout(message) {
  teardown();
  clearSession();
  current = null;
  showLogin(message);
}

/** Asks the server whether the token is still good (a 401 logs out); at most every 30 s. */
function checkSession() {
  const now = Date.now();
  if (now - lastSessionCheck < 30000) return;
  lastSessionCheck = now;
  api.me().catch(() => {});
}

function sessionNearExpiry(now) {
  const exp = expiryOf(current);
  return Number.isFinite(exp) && now >= exp - EXPIRY_MARGIN_MS;
}

// ---- the dashboard ----

const canAct = () => canHandleAlerts(current?.user);

async function alertAction(kind, alert, note) {
  const h0 = hospital;
  try {
    const updated = await api[kind](h0, alert.id, note);
    if (h0 === hospital && updated && typeof updated === 'object' && updated.id) {
      store.applyAlert(updated, kind === 'ack' ? 'acknowledged' : 'resolved');
    }
    return '';
  } catch (err) {
    if (err.status === 409 && h0 === hospital) {
      // Its state changed under us: fetch the alert so the buttons match the truth.
      api
        .request('GET', `/hospitals/${encodeURIComponent(h0)}/alerts/${encodeURIComponent(alert.id)}`)
        .then((res) => {
          const a = res && typeof res.alert === 'object' && res.alert ? res.alert : res;
          if (h0 === hospital && a && a.id) store.applyAlert(a, 'sync');
        })
        .catch(() => {});
    }
    return errorText(err);
  }
}

const actions = {
  ack: (alert, note) => alertAction('ack', alert, note),
  resolve: (alert, note) => alertAction('resolve', alert, note),
};

function setConn(status) {
  connStatus = status;
  // While live updates are down (or never come: with an external broker Vigil serves no /mqtt),
  // the ward is refreshed over REST every POLL_MS.
  if (status.state === 'connected') {
    clearInterval(pollTimer);
    pollTimer = null;
  } else if (!pollTimer && hospital) {
    pollTimer = setInterval(() => {
      if (globalThis.navigator?.onLine !== false) sync(); // offline: nothing to fetch, no error notices
    }, POLL_MS);
  }
  let shown = status;
  if (globalThis.navigator && navigator.onLine === false && status.state !== 'connected') {
    shown = { ...status, state: 'offline', nextRetryAt: null, reason: 'This computer is offline.' };
  }
  if (!ui) return;
  ui.header.setConn(shown);
  ui.ward.setLive(shown.state === 'connected');
  document.body.dataset.conn = shown.state;
}

function updateTitle() {
  const n = store.unreadCount();
  document.title = `${n ? `(${n}) ` : ''}Vigil${hospital ? ` · ${hospital}` : ''}`;
}

function buildUI() {
  uiAbort = new AbortController();
  const signal = uiAbort.signal;
  const user = current.user;

  const chooseBox = h('section', { class: 'choose', testid: 'choose-hospital', hidden: true, 'aria-labelledby': 'choose-title' });
  const wardBox = h('section', { class: 'ward', 'aria-label': 'Ward' });
  replace($('main'), chooseBox, wardBox);

  const header = createHeader($('app-header'), {
    user,
    recent: recentHospitals,
    onHospital: (hh) => selectHospital(hh),
    onLogout: () => logout(''),
    onBell: () => ui.panel.toggle(),
  });
  ui = {
    header,
    chooseBox,
    panel: createAlertPanel(header.panelAnchor, {
      store,
      bell: header.bell,
      canAct,
      actions,
      hrefFor,
      signal,
      onOpenChange: (open) => header.setPanelOpen(open),
    }),
    banners: createBanners($('banners'), { store, canAct, actions, hrefFor }),
    ward: createWard(wardBox, { store, hrefFor }),
    side: createSide($('side'), { store, hrefFor }),
    detail: createDetail($('patient-detail'), {
      store,
      api,
      hospital: () => hospital,
      canAct,
      actions,
      signal,
      onClose: () => {
        if (parseHash().p) history.replaceState(null, '', hrefFor(''));
      },
    }),
  };

  const renderWard = scheduler(() => ui?.ward.render());
  const renderPanel = scheduler(() => {
    if (!ui) return;
    ui.panel.render();
    ui.header.setUnread(store.unreadCount());
    updateTitle();
  });
  const renderBanners = scheduler(() => ui?.banners.render());
  const renderTriage = scheduler(() => ui?.side.renderTriage());
  const renderBeds = scheduler(() => ui?.side.renderBeds());
  const renderStaff = scheduler(() => ui?.side.renderStaff());
  const renderDetail = () => ui?.detail.render();
  unsubs = [
    store.on('patients', renderWard),
    store.on('patients', renderBanners),
    store.on('patients', renderTriage),
    store.on('patients', renderBeds),
    store.on('patients', renderDetail),
    store.on('devices', renderWard),
    store.on('alerts', renderWard),
    store.on('alerts', renderBanners),
    store.on('alerts', renderPanel),
    store.on('alerts', renderDetail),
    store.on('panel', renderPanel),
    store.on('banners', renderBanners),
    store.on('triage', renderTriage),
    store.on('beds', renderBeds),
    store.on('staff', renderStaff),
    store.on('vitals', ({ patient, sample }) => ui?.detail.onVitals(patient, sample)),
    store.on('unknown-patient', refreshPatientsSoon),
  ];

  window.addEventListener('hashchange', onRoute, { signal });
  window.addEventListener('online', () => {
    setConn(connStatus);
    live?.retryNow();
  }, { signal });
  window.addEventListener('offline', () => {
    live?.networkLost();
    setConn(connStatus);
  }, { signal });
  setConn(connStatus);
}

function teardown() {
  if (live) live.stop();
  live = null;
  clearInterval(ticker);
  clearInterval(pollTimer);
  clearTimeout(refreshTimer);
  ticker = pollTimer = refreshTimer = null;
  if (ui) ui.detail.close();
  for (const u of unsubs) u();
  unsubs = [];
  uiAbort?.abort();
  uiAbort = null;
  ui = null;
  hospital = '';
  hospitalGen++;
  store.reset(null);
  for (const id of ['app-header', 'banners', 'notices', 'main', 'side', 'patient-detail']) replace($(id));
  $('app-view').hidden = true;
}

function enterApp() {
  $('login-view').hidden = true;
  replace($('login-view'));
  $('app-view').hidden = false;
  buildUI();
  ticker = setInterval(tick, 1000);
  const want = pickHospital();
  if (want) selectHospital(want);
  else showChooser();
}

function pickHospital() {
  const r = parseHash();
  if (r.h && allowed(r.h)) return r.h;
  const saved = savedHospital();
  if (saved && allowed(saved)) return saved;
  const own = (current.user.hospitals || []).filter(validID);
  if (own.length === 1) return own[0];
  if (current.user.role === 'admin') return recentHospitals().find(validID) || '';
  return '';
}

function showChooser() {
  const user = current.user;
  const own = (user.hospitals || []).filter(validID);
  ui.header.setHospital('');
  const box = ui.chooseBox;
  box.hidden = false;
  const none = user.role !== 'admin' && own.length === 0;
  replace(
    box,
    h('h2', { id: 'choose-title' }, 'Choose a hospital'),
    none
      ? h('p', { class: 'empty' }, 'Your account has no hospital. Ask an administrator to add one.')
      : [
          h('p', {}, user.role === 'admin' ? 'Enter the ID of the hospital to watch.' : 'Pick the hospital to watch.'),
          hospitalChooser({ user, current: '', recent: recentHospitals(), onChoose: selectHospital, idPrefix: 'choose' }),
        ],
  );
  box.querySelector('input, select')?.focus();
}

function selectHospital(h0) {
  if (!ui) return;
  if (!allowed(h0)) {
    notice('hospital', `You have no access to hospital ${h0}.`);
    return;
  }
  if (h0 === hospital) return;
  hospital = h0;
  hospitalGen++;
  rememberHospital(h0);
  ui.detail.close();
  ui.panel.close();
  ui.chooseBox.hidden = true;
  clearNotices();
  store.reset(h0);
  broadcastsSince = store.now() - 60 * 1000;
  ui.header.setHospital(h0);
  updateTitle();
  const r = parseHash();
  if (r.h !== h0) history.replaceState(null, '', hrefFor(''));

  if (live) live.stop();
  clearInterval(pollTimer);
  pollTimer = null;
  live = new Live({
    username: current.user.username,
    token: current.token,
    hospital: h0,
    onMessage: (info, text, opts) => store.handleMessage(info, text, opts),
    onStatus: setConn,
    onSubscribed: (failed, err) => {
      if (err) notice('subscribe', `Live updates refused: ${err.message || err}.`);
      else if (failed.length) notice('subscribe', `Live updates refused for ${failed.length} topic(s) of ${h0}: ${failed.join(', ')}`);
      else notice('subscribe', '');
      sync(); // catch up on whatever happened while we were not subscribed
    },
    onAuthRefused: checkSession,
  });
  live.start();
  sync(); // now, whether or not the live connection comes up; again after each subscribe
  if (!live.available) {
    notice('live', 'Live updates are unavailable (MQTT.js not loaded); the dashboard refreshes every 30 s.');
  }
  onRoute();
}

/** Loads patients, open alerts, beds, staff, triage and missed broadcasts over REST and merges them. */
async function sync() {
  if (!hospital) return;
  if (syncing) {
    syncAgain = true;
    return;
  }
  const gen = hospitalGen;
  const h0 = hospital;
  const mark = store.beginSync();
  const tasks = [
    ['patients', () => api.patients(h0), (items) => store.mergePatients(items, mark)],
    ['alerts', () => api.openAlerts(h0), (items) => store.mergeAlerts(items, mark)],
    ['beds', () => api.beds(h0), (items) => store.mergeEntities(store.beds, items, mark, 'beds')],
    ['staff', () => api.staff(h0), (items) => store.mergeEntities(store.staff, items, mark, 'staff')],
    ['triage', () => api.triage(h0), (items) => store.mergeEntities(store.triage, items, mark, 'triage')],
    ['broadcasts', () => api.broadcasts(h0), (items) => store.mergeBroadcasts(items, broadcastsSince)],
  ];
  syncing = Promise.allSettled(tasks.map(([, fetch]) => fetch()));
  try {
    const results = await syncing;
    if (gen !== hospitalGen || !current) return;
    results.forEach((r, i) => {
      const [name, , merge] = tasks[i];
      if (r.status === 'fulfilled') {
        merge(r.value);
        notice(`load-${name}`, '');
        return;
      }
      const err = r.reason;
      if (err?.status === 401) return; // logged out already
      if (name === 'patients' && (err?.status === 404 || err?.status === 403)) {
        notice(`load-${name}`, `Hospital ${h0} was not found, or you have no access to it.`, 'error');
      } else {
        notice(`load-${name}`, `Could not load ${name}: ${errorText(err)}`, name === 'patients' || name === 'alerts' ? 'error' : 'warn');
      }
    });
    ui?.ward.render();
  } finally {
    syncing = null;
    if (syncAgain) {
      syncAgain = false;
      sync();
    }
  }
}

/** A risk event named a patient we do not know (just admitted): fetch the list soon. */
function refreshPatientsSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    const gen = hospitalGen;
    const mark = store.beginSync();
    try {
      const items = await api.patients(hospital);
      if (gen === hospitalGen) store.mergePatients(items, mark);
    } catch {
      // the next sync will try again
    }
  }, 1500);
}

let tickCount = 0;
function tick() {
  if (!current || !ui) return;
  const now = Date.now();
  if (sessionNearExpiry(now)) {
    logout('Your session has expired. Please log in again.');
    return;
  }
  store.tick();
  ui.header.tick(now);
  ui.ward.tick(now);
  if (++tickCount % 10 === 0) {
    ui.panel.tickTimes(now);
    ui.side.tick();
    ui.detail.tick();
    ui.banners.render();
  }
}

function start() {
  current = loadSession();
  if (current && !sessionNearExpiry(Date.now())) enterApp();
  else {
    if (current) clearSession();
    current = null;
    showLogin('');
  }
}

start();
