// Browser test of the dashboard: Chromium (Debian's, never a test tool's own download) driven
// by playwright-core against a running Vigil. The Go test cmd/vigil/browser_test.go starts
// Vigil, feeds it vitals and runs this script; it works as well by hand against `vigil demo`
// for the first steps.
//
// It logs in, waits for the ward to fill, then follows one alert through the page: raised
// (seen in the alert panel), escalated (banner), acknowledged (its state changes), and finally
// goes offline and checks that an alert raised meanwhile shows up after the reconnect (the page
// refetches open alerts over REST). Screenshots go to the artifacts directory.
//
// Protocol with the driver: one JSON line per step on stdout, e.g.
//   {"step":"ward","ok":true,"ms":1234,"patients":4}
// A step that needs the driver to act first prints {"step":"wait","for":"<what>"} and reads one
// JSON line from stdin:
//   for "alert":          the driver raises a high-priority alert; answers {"alert":"<id>"}
//   for "disconnect":     the driver closes the page's MQTT connection; answers {"ok":true}
//   for "offline-alert":  the driver raises another alert while the page is offline;
//                         answers {"alert":"<id>","patient":"<patient id>","vitals":{"hr":130}}
//                         (vitals: values the patient's card must show after the reconnect)
// A driver answers {"error":"..."} to give up. On failure the script prints
// {"step":"<step>","ok":false,"error":"..."}, saves failure.png and exits 1.
//
// Usage:
//   VIGIL_PASSWORD=... node test/browser/dashboard.mjs --url http://127.0.0.1:8080/ \
//     --user nurse --patients p1,p2 [--artifacts dir] [--chromium /usr/bin/chromium]
// Each option can come from the environment instead: VIGIL_URL, VIGIL_USER, VIGIL_PASSWORD,
// VIGIL_PATIENTS, VIGIL_TEST_ARTIFACTS, VIGIL_CHROMIUM. The password is best given in the
// environment, where process listings do not show it.

import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.VIGIL_URL || '' },
    user: { type: 'string', default: process.env.VIGIL_USER || '' },
    password: { type: 'string', default: process.env.VIGIL_PASSWORD || '' },
    patients: { type: 'string', default: process.env.VIGIL_PATIENTS || '' },
    artifacts: { type: 'string', default: process.env.VIGIL_TEST_ARTIFACTS || 'test-artifacts' },
    chromium: { type: 'string', default: process.env.VIGIL_CHROMIUM || '/usr/bin/chromium' },
    timeout: { type: 'string', default: '15000' }, // per wait, ms
  },
});

const WAIT_MS = Number(opt.timeout) || 15000;
const started = Date.now();
let currentStep = 'start';

function emit(step, fields = {}) {
  process.stdout.write(`${JSON.stringify({ step, ok: true, ms: Date.now() - started, ...fields })}\n`);
}

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

for (const [name, v] of [['--url', opt.url], ['--user', opt.user], ['VIGIL_PASSWORD (or --password)', opt.password], ['--patients', opt.patients]]) {
  if (!v) {
    process.stdout.write(`${JSON.stringify({ step: 'start', ok: false, error: `${name} is required` })}\n`);
    process.exit(2);
  }
}
const patients = opt.patients.split(',').map((p) => p.trim()).filter(Boolean);
const artifacts = resolve(opt.artifacts);

// ---- the driver's answers on stdin ----

const answers = [];
const waiting = [];
let stdinClosed = false;
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    msg = { error: `driver sent a line that is not JSON: ${line}` };
  }
  if (waiting.length) waiting.shift()(msg);
  else answers.push(msg);
});
rl.on('close', () => {
  stdinClosed = true;
  while (waiting.length) waiting.shift()({ error: 'driver closed stdin' });
});

/** Asks the driver to act and waits for its answer. */
async function request(what, timeoutMs = 30000) {
  emit('wait', { for: what });
  const msg = await new Promise((res) => {
    if (answers.length) return res(answers.shift());
    if (stdinClosed) return res({ error: 'driver closed stdin' });
    const timer = setTimeout(() => res({ error: `no answer from the driver for "${what}" within ${timeoutMs} ms` }), timeoutMs);
    waiting.push((m) => {
      clearTimeout(timer);
      res(m);
    });
  });
  if (msg.error) fail(msg.error);
  return msg;
}

// ---- the page ----

const consoleErrors = []; // {phase, text}
let phase = 'online'; // 'offline' from going offline until the page is live again

/** While offline the browser reports its failed requests and WebSocket attempts; nothing else may fail. */
function expectedWhileOffline(text) {
  return /ERR_INTERNET_DISCONNECTED|ERR_NAME_NOT_RESOLVED|WebSocket connection to .* failed|Failed to load resource/i.test(text);
}

const browser = await chromium.launch({
  executablePath: opt.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, reducedMotion: 'reduce' });
const page = await context.newPage();
page.setDefaultTimeout(WAIT_MS);
page.on('console', (m) => {
  if (m.type() === 'error') consoleErrors.push({ phase, text: m.text() });
});
page.on('pageerror', (e) => consoleErrors.push({ phase, text: `uncaught: ${e.message}`, uncaught: true }));

const tid = (id) => page.locator(`[data-testid="${id}"]`);

async function shot(name) {
  const path = join(artifacts, name);
  await page.screenshot({ path });
  return path;
}

/** Waits until the connection indicator is in one of states. */
async function waitConn(states, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      (want) => want.includes(document.querySelector('[data-testid="conn"]')?.getAttribute('data-state')),
      states,
      { timeout },
    );
  } catch {
    const now = await tid('conn').getAttribute('data-state').catch(() => '?');
    const online = await page.evaluate(() => navigator.onLine).catch(() => '?');
    fail(`connection indicator is "${now}" (navigator.onLine ${online}), want ${states.join(' or ')} within ${timeout} ms`);
  }
}

async function openPanel() {
  if ((await tid('bell').getAttribute('aria-expanded')) !== 'true') await tid('bell').click();
  await tid('alert-panel').waitFor({ state: 'visible' });
}

/** Waits for the alert's panel row in the given state. */
async function waitAlert(id, state) {
  const row = page.locator(`[data-testid="alert-${id}"][data-state="${state}"]`);
  try {
    await row.waitFor({ state: 'visible' });
  } catch {
    const now = await tid(`alert-${id}`).getAttribute('data-state', { timeout: 500 }).catch(() => 'absent');
    fail(`alert ${id} in the panel is ${now}, want ${state}`);
  }
  return row;
}

async function run() {
  await mkdir(artifacts, { recursive: true });

  currentStep = 'login';
  await page.goto(opt.url);
  await tid('login-username').fill(opt.user);
  await tid('login-password').fill(opt.password);
  await tid('login-submit').click();
  await tid('ward').waitFor({ state: 'visible' }).catch(async () => {
    const err = await tid('login-error').textContent({ timeout: 500 }).catch(() => '');
    fail(`the ward did not appear after logging in${err ? `: ${err}` : ''}`);
  });
  await waitConn(['connected']);
  emit('login', { user: opt.user });

  // The ward fills: a card per patient, each with a NEWS2 score from the live vitals.
  currentStep = 'ward';
  try {
    await page.waitForFunction(
      (ids) => ids.every((id) => /^\d+$/.test(document.querySelector(`[data-testid="score-${id}"]`)?.textContent ?? '')),
      patients,
    );
  } catch {
    const scores = await page.evaluate(
      (ids) => Object.fromEntries(ids.map((id) => [id, document.querySelector(`[data-testid="score-${id}"]`)?.textContent ?? 'no card'])),
      patients,
    );
    fail(`the ward did not fill: scores ${JSON.stringify(scores)}`);
  }
  const cards = await page.locator('[data-testid="ward"] > [data-testid^="patient-"]').count();
  if (cards !== patients.length) fail(`the ward shows ${cards} patients, want ${patients.length}`);
  emit('ward', { patients: cards, screenshot: await shot('ward.png') });

  // A high-priority alert arrives live: in the panel, active; then it escalates (banner).
  currentStep = 'alert';
  const first = await request('alert');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="unread"]')?.textContent) > 0);
  await openPanel();
  const row = await waitAlert(first.alert, 'active');
  if ((await row.getAttribute('data-priority')) !== 'high') fail(`alert ${first.alert} is not shown as high priority`);
  emit('alert', { alert: first.alert, state: 'active' });

  currentStep = 'escalation';
  await tid(`escalation-${first.alert}`).waitFor({ state: 'visible' });
  emit('escalation', { alert: first.alert, screenshot: await shot('alert-panel.png') });

  // Acknowledge it from the panel: its state changes there and the escalation banner goes.
  currentStep = 'acknowledge';
  await tid(`ack-${first.alert}`).click();
  await waitAlert(first.alert, 'acknowledged');
  const stateText = (await tid(`alert-state-${first.alert}`).textContent()) || '';
  if (!stateText.includes(`Acknowledged by ${opt.user}`)) fail(`alert state reads "${stateText}", want "Acknowledged by ${opt.user}"`);
  await tid(`escalation-${first.alert}`).waitFor({ state: 'detached' });
  emit('acknowledge', { alert: first.alert, state: 'acknowledged', screenshot: await shot('acknowledged.png') });

  // Offline: the browser loses the network and the server drops its MQTT connection.
  currentStep = 'offline';
  phase = 'offline';
  await context.setOffline(true);
  await request('disconnect');
  await waitConn(['offline', 'reconnecting']);
  await tid('ward-paused').waitFor({ state: 'visible' }); // "Live updates paused" over the ward
  emit('offline', { conn: await tid('conn').getAttribute('data-state'), screenshot: await shot('offline.png') });

  // An alert raised while the page is away appears once it is back.
  currentStep = 'reconnect';
  const second = await request('offline-alert');
  await context.setOffline(false);
  await waitConn(['connected'], 35000); // the backoff is at most 30 s; going online retries at once
  phase = 'online';
  await openPanel();
  await waitAlert(second.alert, 'active');
  if (second.patient) {
    // The ward caught up too: the card counts the alert and shows the vitals sent meanwhile.
    await page.waitForFunction((p) => Number(document.querySelector(`[data-testid="alerts-${p}"]`)?.dataset.count) > 0, second.patient);
    for (const [k, v] of Object.entries(second.vitals || {})) {
      const cell = tid(`vital-${second.patient}-${k}`);
      try {
        await page.waitForFunction(([id, want]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === want, [`vital-${second.patient}-${k}`, String(v)]);
      } catch {
        fail(`after the reconnect ${second.patient}'s card shows ${k} ${await cell.textContent().catch(() => '?')}, want ${v}`);
      }
    }
  }
  emit('reconnect', { alert: second.alert, screenshot: await shot('after-reconnect.png') });

  currentStep = 'console';
  const bad = consoleErrors.filter((e) => e.uncaught || e.phase !== 'offline' || !expectedWhileOffline(e.text));
  if (bad.length) fail(`console errors: ${bad.map((e) => e.text).join(' | ')}`);
  emit('console', { errors: consoleErrors.length, expected_offline: consoleErrors.length - bad.length });
}

let code = 0;
try {
  await run();
  emit('done');
} catch (err) {
  code = 1;
  const message = err instanceof Failure ? err.message : err?.stack || String(err);
  let screenshot;
  try {
    screenshot = await shot('failure.png');
  } catch {
    // the page may be gone
  }
  process.stdout.write(`${JSON.stringify({ step: currentStep, ok: false, ms: Date.now() - started, error: message, screenshot })}\n`);
} finally {
  rl.close();
  await browser.close().catch(() => {});
}
process.exit(code);
