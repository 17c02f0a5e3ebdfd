// The vitals chart: one strip per sign (own scale and unit) on a shared time axis, the NEWS2
// score-0 band shaded, drawn as SVG by hand. Long histories are reduced to a min/max per
// bucket, so spikes survive the reduction.

import { s } from '../dom.js';
import { clockTime, parseTime } from '../format.js';

// NEWS2 score-0 ranges (RCP 2017 chart 1); SpO2 scale 2 is 88-92 % (or >= 93 on air).
export const SERIES = [
  { key: 'hr', label: 'HR', unit: '/min', min: 40, max: 140, normal: [51, 90] },
  { key: 'rr', label: 'RR', unit: '/min', min: 5, max: 30, normal: [12, 20] },
  { key: 'spo2', label: 'SpO₂', unit: '%', min: 85, max: 100, normal: [96, 100], normal2: [88, 92] },
  { key: 'sbp', label: 'SBP', unit: 'mmHg', min: 80, max: 180, normal: [111, 219] },
  { key: 'temp', label: 'Temp', unit: '°C', min: 35, max: 39.5, normal: [36.1, 38.0] },
];

const W = 760;
const LEFT = 88;
const RIGHT = 72;
const STRIP = 64;
const GAP = 14;
const TOP = 8;
const AXIS = 26;
const BUCKETS = 320;

/**
 * Points of one sign between from and to (epoch ms), as segments of [t, v] pairs, split where
 * no data came for a while; reduced to at most two points per bucket.
 */
export function seriesSegments(samples, key, from, to, buckets = BUCKETS) {
  const pts = [];
  for (const x of samples) {
    const v = x[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    const t = x._t ?? parseTime(x.ts);
    if (!Number.isFinite(t) || t < from || t > to) continue;
    pts.push([t, v]);
  }
  pts.sort((a, b) => a[0] - b[0]);
  let reduced = pts;
  if (pts.length > buckets * 2) {
    reduced = [];
    const width = (to - from) / buckets;
    let i = 0;
    while (i < pts.length) {
      const b = Math.floor((pts[i][0] - from) / width);
      let lo = pts[i];
      let hi = pts[i];
      let j = i;
      for (; j < pts.length && Math.floor((pts[j][0] - from) / width) === b; j++) {
        if (pts[j][1] < lo[1]) lo = pts[j];
        if (pts[j][1] > hi[1]) hi = pts[j];
      }
      if (lo === hi) reduced.push(lo);
      else if (lo[0] <= hi[0]) reduced.push(lo, hi);
      else reduced.push(hi, lo);
      i = j;
    }
  }
  const gap = Math.max(5 * 60 * 1000, (to - from) / 48);
  const segments = [];
  let cur = [];
  for (const p of reduced) {
    if (cur.length && p[0] - cur[cur.length - 1][0] > gap) {
      segments.push(cur);
      cur = [];
    }
    cur.push(p);
  }
  if (cur.length) segments.push(cur);
  return segments;
}

/** Time axis step (ms) giving at most about 8 ticks. */
export function tickStep(span) {
  const steps = [5, 10, 15, 30, 60, 120, 180, 360, 720].map((m) => m * 60 * 1000);
  return steps.find((st) => span / st <= 8) ?? steps[steps.length - 1];
}

function fmt(key, v) {
  return key === 'temp' ? v.toFixed(1) : String(Math.round(v));
}

/** Builds the chart's SVG element for samples between from and to. */
export function renderChart(samples, { from, to, spo2Scale = 1, now = Date.now() }) {
  const height = TOP + SERIES.length * (STRIP + GAP) + AXIS;
  const plotW = W - LEFT - RIGHT;
  const x = (t) => LEFT + ((t - from) / (to - from)) * plotW;
  let count = 0;
  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${W} ${height}`,
    role: 'img',
    testid: 'vitals-chart',
    preserveAspectRatio: 'xMidYMid meet',
  });
  const title = s('title');
  svg.append(title);

  // strip backgrounds, then the time grid over them, then the data
  SERIES.forEach((cfg, i) => {
    svg.append(s('rect', { class: 'strip', x: LEFT, y: TOP + i * (STRIP + GAP), width: plotW, height: STRIP }));
  });
  const step = tickStep(to - from);
  const first = Math.ceil(from / step) * step;
  const axisY = TOP + SERIES.length * (STRIP + GAP);
  for (let t = first; t <= to; t += step) {
    const xx = x(t).toFixed(1);
    svg.append(s('line', { class: 'grid', x1: xx, x2: xx, y1: TOP, y2: axisY - GAP }));
    svg.append(s('text', { class: 'axis-label', x: xx, y: axisY + 12, 'text-anchor': 'middle' }, clockTime(t, now)));
  }

  SERIES.forEach((cfg, i) => {
    const top = TOP + i * (STRIP + GAP);
    const segments = seriesSegments(samples, cfg.key, from, to);
    let lo = cfg.min;
    let hi = cfg.max;
    for (const seg of segments) {
      for (const [, v] of seg) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    const y = (v) => top + STRIP - ((v - lo) / (hi - lo || 1)) * STRIP;
    const normal = cfg.key === 'spo2' && spo2Scale === 2 ? cfg.normal2 : cfg.normal;
    const g = s('g', { class: `series series-${cfg.key}` });
    const nTop = y(Math.min(hi, normal[1]));
    const nBottom = y(Math.max(lo, normal[0]));
    if (nBottom > nTop) {
      g.append(s('rect', { class: 'normal-band', x: LEFT, y: nTop.toFixed(1), width: plotW, height: (nBottom - nTop).toFixed(1) }));
    }
    g.append(s('text', { class: 'series-label', x: 6, y: top + 14 }, cfg.label));
    g.append(s('text', { class: 'unit-label', x: 6, y: top + 28 }, cfg.unit));
    g.append(s('text', { class: 'axis-label', x: LEFT - 4, y: top + 10, 'text-anchor': 'end' }, fmt(cfg.key, hi)));
    g.append(s('text', { class: 'axis-label', x: LEFT - 4, y: top + STRIP, 'text-anchor': 'end' }, fmt(cfg.key, lo)));
    let last = null;
    for (const seg of segments) {
      count += seg.length;
      if (seg.length === 1) {
        const [t, v] = seg[0];
        g.append(s('circle', { class: 'point', cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5 }));
      } else {
        const points = seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
        g.append(s('polyline', { class: 'line', points }));
      }
      last = seg[seg.length - 1];
    }
    if (last) {
      g.append(s('text', { class: 'last-value', x: W - RIGHT + 8, y: (y(last[1]) + 4).toFixed(1) }, fmt(cfg.key, last[1])));
    } else {
      g.append(s('text', { class: 'no-data', x: LEFT + plotW / 2, y: top + STRIP / 2 + 4, 'text-anchor': 'middle' }, 'no data'));
    }
    svg.append(g);
  });
  const hours = Math.round((to - from) / 3600000);
  title.textContent = `Vitals over the last ${hours} hour${hours === 1 ? '' : 's'}: ${count} points`;
  svg.setAttribute('aria-label', title.textContent);
  svg.dataset.points = String(count);
  return svg;
}
