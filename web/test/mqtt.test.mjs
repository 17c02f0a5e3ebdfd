import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BACKOFF_MAX_MS, Live, backoffDelay, brokerURL } from '../static/js/mqtt.js';

test('backoffDelay doubles from 1 s up to 30 s', () => {
  const mid = () => 0.5; // no jitter
  assert.deepEqual([1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, mid)), [2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  for (let n = 0; n < 40; n++) {
    for (const r of [0, 0.999]) {
      const d = backoffDelay(n, () => r);
      assert.ok(d > 0 && d <= BACKOFF_MAX_MS, `attempt ${n}: ${d}`);
    }
  }
});

test('brokerURL follows the page scheme', () => {
  assert.equal(brokerURL({ protocol: 'http:', host: 'vigil.local:8080' }), 'ws://vigil.local:8080/mqtt');
  assert.equal(brokerURL({ protocol: 'https:', host: 'vigil.example' }), 'wss://vigil.example/mqtt');
});

// A stand-in for MQTT.js: records options and lets the test emit events.
function fakeLib() {
  const handlers = new Map();
  const client = {
    options: null,
    subscribed: null,
    connected: false,
    on(ev, fn) {
      if (!handlers.has(ev)) handlers.set(ev, []);
      handlers.get(ev).push(fn);
    },
    emit(ev, ...args) {
      for (const fn of handlers.get(ev) || []) fn(...args);
    },
    subscribe(filters, cb) {
      this.subscribed = filters;
      cb(null, Object.keys(filters).map((topic) => ({ topic, qos: topic.endsWith('/vitals') ? 128 : 1 })));
    },
    end() {},
  };
  return {
    client,
    connect(url, options) {
      client.url = url;
      client.options = { ...options };
      return client;
    },
  };
}

test('Live connects with MQTT 5, subscribes at QoS 1, backs off and reports state', () => {
  const lib = fakeLib();
  const states = [];
  const messages = [];
  let failed = null;
  const live = new Live({
    url: 'ws://x/mqtt',
    username: 'alice',
    token: 'jwt',
    hospital: 'h1',
    lib,
    onStatus: (s) => states.push(s.state),
    onMessage: (info, text, opts) => messages.push([info.kind, text, opts.retained]),
    onSubscribed: (f) => (failed = f),
  });
  live.start();
  const c = lib.client;
  assert.equal(c.options.protocolVersion, 5);
  assert.equal(c.options.username, 'alice');
  assert.equal(c.options.password, 'jwt');
  assert.equal(c.options.clean, true);
  c.emit('connect');
  assert.equal(Object.keys(c.subscribed).length, 9);
  assert.ok(Object.values(c.subscribed).every((o) => o.qos === 1));
  assert.deepEqual(failed, ['hospital/h1/patient/+/vitals']);
  assert.equal(states.at(-1), 'connected');

  c.emit('close');
  assert.equal(states.at(-1), 'reconnecting');
  let prev = 0;
  for (let i = 0; i < 8; i++) {
    c.emit('reconnect');
    assert.ok(c.options.reconnectPeriod >= prev * 0.6 && c.options.reconnectPeriod <= 30000);
    prev = c.options.reconnectPeriod;
  }
  assert.ok(prev >= 24000, `after 8 attempts the period is ${prev} ms`);
  c.emit('connect');
  assert.equal(c.options.reconnectPeriod, 1000);

  const enc = new TextEncoder();
  c.emit('message', 'hospital/h1/patient/p1/risk', enc.encode('{"type":"risk_updated"}'), { retain: true });
  c.emit('message', 'hospital/h2/patient/p1/risk', enc.encode('{}'), { retain: false });
  c.emit('message', 'hospital/h1/bed/b1', new Uint8Array(0), { retain: false });
  assert.deepEqual(messages, [
    ['risk', '{"type":"risk_updated"}', true],
    ['bed', '', false],
  ]);

  live.stop();
  assert.equal(states.at(-1), 'offline');
});

test('Live without MQTT.js reports offline', () => {
  const states = [];
  const live = new Live({ username: 'a', token: 't', hospital: 'h1', lib: undefined, url: 'ws://x/mqtt', onStatus: (s) => states.push(s.state) });
  assert.equal(live.available, false);
  live.start();
  assert.deepEqual(states, ['offline']);
});

test('Live drops a connection the browser says has no network', () => {
  const lib = fakeLib();
  const live = new Live({ url: 'ws://x/mqtt', username: 'a', token: 't', hospital: 'h1', lib });
  live.start();
  const c = lib.client;
  let destroyed = 0;
  c.stream = { destroy: () => destroyed++ };
  live.networkLost(); // not connected yet: nothing to drop
  assert.equal(destroyed, 0);
  c.connected = true;
  c.emit('connect');
  live.networkLost();
  assert.equal(destroyed, 1, 'the socket is closed so MQTT.js reconnects (and the page resyncs)');
  live.stop();
  live.networkLost();
  assert.equal(destroyed, 1, 'a stopped connection is left alone');
});
