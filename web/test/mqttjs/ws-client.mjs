// A browser stand-in for the Go integration tests (cmd/vigil/broker_test.go): MQTT.js, the
// library the dashboard uses, connects to Vigil over WebSocket with a JWT, subscribes to one
// filter and reports what happens as JSON lines on stdout, one event a line:
//
//   {"event":"connected","session_present":false}
//   {"event":"subscribed","granted":[{"topic":"...","qos":1}]}
//   {"event":"subscribe_refused","code":135,"reasons":[135],"message":"..."}
//   {"event":"message","topic":"...","qos":1,"retain":false,"payload":{...}}
//   {"event":"transport_error","message":"Unexpected server response: 403"}
//   {"event":"error","message":"...","code":...}
//   {"event":"closed","connected":true}
//
// It runs until the connection closes, stdin ends (the test is done) or --timeout passes.
// Usage: VIGIL_TOKEN=<jwt> node ws-client.mjs --url ws://127.0.0.1:8080/mqtt
//          --filter 'hospital/h1/#' [--origin http://dashboard.test] [--client-id id] [--timeout ms]
// The token comes from the environment, not argv, so it does not show in process listings.

import { parseArgs } from 'node:util';

import mqtt from 'mqtt';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    filter: { type: 'string' },
    origin: { type: 'string' },
    'client-id': { type: 'string', default: `mqttjs-${process.pid}` },
    timeout: { type: 'string', default: '30000' },
  },
});
if (!args.url || !args.filter) {
  console.error('usage: VIGIL_TOKEN=<jwt> node ws-client.mjs --url ws://host:port/mqtt --filter <filter> [--origin <origin>]');
  process.exit(2);
}

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');

let connected = false;
let finished = false;
const finish = (code = 0) => {
  if (finished) return;
  finished = true;
  emit('closed', { connected });
  client.end(true, () => process.exit(code));
  setTimeout(() => process.exit(code), 1000).unref();
};

const client = mqtt.connect(args.url, {
  protocolVersion: 5,
  clientId: args['client-id'],
  username: 'mqttjs', // free for browsers: Vigil takes the user from the token
  password: process.env.VIGIL_TOKEN || '',
  clean: true,
  reconnectPeriod: 0, // report a refusal instead of retrying
  connectTimeout: 10000,
  // Node's WebSocket (ws) sends these headers on the upgrade, as a browser sends its page's
  // origin.
  wsOptions: args.origin ? { headers: { Origin: args.origin } } : {},
});

// MQTT.js drops transport errors without a code (such as a refused WebSocket upgrade); the
// stream still has them.
client.stream?.on('error', (err) => emit('transport_error', { message: err.message }));

client.on('connect', (connack) => {
  connected = true;
  emit('connected', { session_present: Boolean(connack.sessionPresent) });
  client.subscribe(args.filter, { qos: 1 }, (err, granted) => {
    if (err) {
      // MQTT.js 5 rejects with the SUBACK packet attached: its reason codes, one per filter.
      const reasons = err.packet?.granted ?? [];
      const code = reasons.find((c) => c >= 0x80) ?? err.code ?? null;
      emit('subscribe_refused', { code, reasons, message: err.message });
      return;
    }
    emit('subscribed', { granted });
  });
});

client.on('message', (topic, payload, packet) => {
  let body;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    body = payload.toString('utf8');
  }
  emit('message', { topic, qos: packet.qos, retain: Boolean(packet.retain), payload: body });
});

client.on('error', (err) => emit('error', { message: err.message, code: err.code ?? null }));
client.on('close', () => finish(0));

process.stdin.on('end', () => finish(0));
process.stdin.resume();
setTimeout(() => {
  emit('error', { message: `timeout after ${args.timeout} ms` });
  finish(1);
}, Number(args.timeout)).unref();
