import assert from 'node:assert/strict';
import { test } from 'node:test';

import { seriesSegments, tickStep } from '../static/js/views/chart.js';

const T0 = Date.parse('2026-11-25T10:00:00Z');
const at = (ms, v) => ({ ts: new Date(T0 + ms).toISOString(), hr: v });

test('seriesSegments keeps points in range, sorted, split at gaps', () => {
  const samples = [at(60000, 80), at(0, 70), at(-1, 99), at(30 * 60000, 90), { ts: 'bad', hr: 1 }, { ts: new Date(T0).toISOString() }];
  const segs = seriesSegments(samples, 'hr', T0, T0 + 3600000);
  assert.deepEqual(segs, [
    [
      [T0, 70],
      [T0 + 60000, 80],
    ],
    [[T0 + 30 * 60000, 90]],
  ]);
});

test('seriesSegments reduces long series but keeps the extremes', () => {
  const samples = [];
  for (let i = 0; i < 10000; i++) samples.push(at(i * 1000, 80 + (i % 7)));
  samples.push(at(5000 * 1000 + 500, 250)); // a spike
  const segs = seriesSegments(samples, 'hr', T0, T0 + 10000 * 1000, 100);
  const pts = segs.flat();
  assert.ok(pts.length <= 200, `${pts.length} points`);
  assert.ok(pts.some(([, v]) => v === 250), 'the spike survives');
  assert.ok(pts.every((p, i) => i === 0 || p[0] >= pts[i - 1][0]), 'in time order');
});

test('tickStep gives at most about 8 ticks', () => {
  assert.equal(tickStep(3600000), 10 * 60000);
  assert.equal(tickStep(4 * 3600000), 30 * 60000);
  assert.equal(tickStep(12 * 3600000), 2 * 3600000);
});
