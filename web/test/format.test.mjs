import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ageText,
  comparePatients,
  compareTriage,
  formatValue,
  levelClass,
  relTime,
} from '../static/js/format.js';

test('relTime as the alert panel shows it', () => {
  const now = Date.parse('2026-11-25T10:00:00Z');
  const cases = [
    [now, 'now'],
    [now - 59_000, 'now'],
    [now + 5_000, 'now'], // clock skew
    [now - 5 * 60_000, '5m ago'],
    [now - 3 * 3600_000, '3h ago'],
    [now - 50 * 3600_000, '2d ago'],
    [NaN, ''],
  ];
  for (const [t, want] of cases) assert.equal(relTime(t, now), want, String(t));
});

test('ageText has seconds resolution', () => {
  const now = 1_000_000_000;
  assert.equal(ageText(now - 12_000, now), '12 s ago');
  assert.equal(ageText(now - 180_000, now), '3 min ago');
  assert.equal(ageText(now - 2 * 3600_000, now), '2 h ago');
  assert.equal(ageText(NaN, now), 'no data');
});

test('levelClass maps the four NEWS2 levels', () => {
  assert.equal(levelClass('low'), 'lvl-low');
  assert.equal(levelClass('low-medium'), 'lvl-low-medium');
  assert.equal(levelClass('medium'), 'lvl-medium');
  assert.equal(levelClass('high'), 'lvl-high');
  assert.equal(levelClass(undefined), 'lvl-none');
  assert.equal(levelClass('toString'), 'lvl-none');
});

test('formatValue', () => {
  assert.equal(formatValue('temp', 37), '37.0');
  assert.equal(formatValue('hr', 88), '88');
  assert.equal(formatValue('o2', true), 'Oxygen');
  assert.equal(formatValue('o2', false), 'Air');
  assert.equal(formatValue('acvpu', 'A'), 'A');
  assert.equal(formatValue('hr', undefined), '—');
  assert.equal(formatValue('hr', 'x'), '—');
});

test('patients sort by bed (naturally, missing last) then id', () => {
  const ps = [
    { id: 'p3', bed: '10' },
    { id: 'p9' },
    { id: 'p1', bed: '2' },
    { id: 'p2', bed: '2' },
    { id: 'p10' },
  ];
  assert.deepEqual(ps.sort(comparePatients).map((p) => p.id), ['p1', 'p2', 'p3', 'p9', 'p10']);
});

test('triage sorts by level then created_at', () => {
  const cs = [
    { id: 'a', level: 3, created_at: '2026-11-25T10:00:00Z' },
    { id: 'b', level: 1, created_at: '2026-11-25T10:05:00Z' },
    { id: 'c', level: 3, created_at: '2026-11-25T09:00:00Z' },
    { id: 'd', level: 1, created_at: '2026-11-25T10:01:00Z' },
  ];
  assert.deepEqual(cs.sort(compareTriage).map((c) => c.id), ['d', 'b', 'c', 'a']);
});
