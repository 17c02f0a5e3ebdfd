// The live connection: MQTT 5 over WebSocket to /mqtt with MQTT.js (the global `mqtt` loaded
// from /vendor/mqtt.min.js), subscriptions of one hospital, and reconnects with backoff.

import { hospitalFilters, parseTopic } from './topics.js';

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 30000;

// CONNACK / DISCONNECT reason codes that mean "your credentials are not accepted" (MQTT 5
// section 3.2.2.2): bad user name or password, not authorized, bad authentication method.
const AUTH_REASONS = new Set([134, 135, 140]);

/**
 * Delay before reconnect attempt n (1, 2, ...): doubling from 1 s up to 30 s, with +-20 %
 * jitter so that browsers do not all come back at the same instant after a restart.
 */
export function backoffDelay(attempt, random = Math.random) {
  const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt));
  const jittered = exp * (0.8 + 0.4 * random());
  return Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_BASE_MS / 2, jittered)));
}

/** The WebSocket URL of the broker on the page's own host. */
export function brokerURL(loc = globalThis.location) {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/mqtt`;
}

function randomID() {
  const b = new Uint8Array(8);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Live keeps one MQTT connection for one hospital.
 * Callbacks: onMessage(info, text, {retained}), onStatus(status), onSubscribed(failedFilters)
 * after each (re)connect once the subscriptions are granted, onAuthRefused(reasonCode).
 * status = {state: connected|reconnecting|offline, nextRetryAt (ms or null), attempt, reason}.
 */
export class Live {
  constructor({ url = brokerURL(), username, token, hospital, onMessage, onStatus, onSubscribed, onAuthRefused, lib = globalThis.mqtt }) {
    this.url = url;
    this.username = username;
    this.token = token;
    this.hospital = hospital;
    this.filters = hospitalFilters(hospital);
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.onSubscribed = onSubscribed || (() => {});
    this.onAuthRefused = onAuthRefused || (() => {});
    this.lib = lib;
    this.client = null;
    this.stopped = false;
    this.attempt = 0;
    this.status = { state: 'offline', nextRetryAt: null, attempt: 0, reason: '' };
    this.decoder = new TextDecoder();
  }

  /** Whether MQTT.js is present (the web build step ran). */
  get available() {
    return !!(this.lib && typeof this.lib.connect === 'function');
  }

  setStatus(patch) {
    this.status = { ...this.status, ...patch, attempt: this.attempt };
    this.onStatus(this.status);
  }

  start() {
    if (!this.available) {
      this.setStatus({ state: 'offline', reason: 'Live updates unavailable: MQTT.js is not loaded.' });
      return;
    }
    this.stopped = false;
    this.setStatus({ state: 'reconnecting', nextRetryAt: null, reason: 'Connecting…' });
    const client = this.lib.connect(this.url, {
      protocolVersion: 5,
      clientId: `vigil-web-${randomID()}`,
      username: this.username,
      password: this.token,
      clean: true,
      keepalive: 30,
      connectTimeout: 10000,
      reconnectPeriod: BACKOFF_BASE_MS,
      resubscribe: false, // we subscribe on every connect, then resynchronise over REST
      properties: { sessionExpiryInterval: 0 },
    });
    this.client = client;

    client.on('connect', () => {
      if (client !== this.client) return;
      this.attempt = 0;
      client.options.reconnectPeriod = BACKOFF_BASE_MS;
      this.setStatus({ state: 'connected', nextRetryAt: null, reason: '' });
      const wanted = Object.fromEntries(this.filters.map((f) => [f, { qos: 1 }]));
      client.subscribe(wanted, (err, granted) => {
        if (client !== this.client) return;
        if (err) {
          this.onSubscribed(this.filters, err);
          return;
        }
        // SUBACK reason codes >= 0x80 are refusals [MQTT-3.9.3].
        const failed = (granted || []).filter((g) => g.qos >= 128).map((g) => g.topic);
        this.onSubscribed(failed, null);
      });
    });

    // MQTT.js arms its reconnect timer from options.reconnectPeriod when the connection closes;
    // raising the period before each attempt makes the next wait longer.
    client.on('reconnect', () => {
      if (client !== this.client) return;
      this.attempt++;
      client.options.reconnectPeriod = backoffDelay(this.attempt);
      this.setStatus({ state: 'reconnecting', nextRetryAt: null });
    });

    client.on('close', () => {
      if (client !== this.client) return;
      if (this.stopped) {
        this.setStatus({ state: 'offline', nextRetryAt: null });
        return;
      }
      this.setStatus({
        state: 'reconnecting',
        nextRetryAt: Date.now() + (client.options.reconnectPeriod || BACKOFF_BASE_MS),
      });
    });

    client.on('disconnect', (packet) => {
      if (client !== this.client) return;
      const rc = packet?.reasonCode;
      this.setStatus({ reason: `Server closed the connection${rc ? ` (reason ${rc})` : ''}` });
      if (AUTH_REASONS.has(rc) || rc === 160 /* maximum connect time: token expired */) this.onAuthRefused(rc);
    });

    client.on('error', (err) => {
      if (client !== this.client) return;
      this.setStatus({ reason: err?.message || String(err) });
      if (AUTH_REASONS.has(err?.code)) this.onAuthRefused(err.code);
    });

    client.on('message', (topic, payload, packet) => {
      if (client !== this.client) return;
      const info = parseTopic(topic);
      if (!info || info.hospital !== this.hospital) return;
      let text;
      try {
        text = payload && payload.length ? this.decoder.decode(payload) : '';
      } catch {
        return;
      }
      this.onMessage(info, text, { retained: !!packet?.retain });
    });
  }

  /** Tries at once instead of waiting for the backoff (e.g. when the browser is back online). */
  retryNow() {
    const c = this.client;
    if (!c || this.stopped || c.connected) return;
    this.attempt = 0;
    c.options.reconnectPeriod = BACKOFF_BASE_MS;
    try {
      c.reconnect();
    } catch {
      // the timer will try again
    }
  }

  /**
   * The browser reports it has no network: the connection cannot be alive, whatever the socket
   * says (a dead link can take until the keepalive runs out, 45 s, to notice). Drop it now so
   * the page shows it is offline and, once back, reconnects and catches up over REST instead of
   * trusting a connection that may have lost messages.
   */
  networkLost() {
    const c = this.client;
    if (!c || this.stopped || !c.connected) return;
    try {
      c.stream?.destroy();
    } catch {
      // already closed: MQTT.js reconnects on its own
    }
  }

  stop() {
    this.stopped = true;
    const c = this.client;
    this.client = null;
    if (c) {
      try {
        c.end(true);
      } catch {
        // already closed
      }
    }
    this.setStatus({ state: 'offline', nextRetryAt: null, reason: '' });
  }
}
