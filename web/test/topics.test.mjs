import assert from 'node:assert/strict';
import { test } from 'node:test';

import { hospitalFilters, parseTopic, validID } from '../static/js/topics.js';

test('validID follows the ID rule of DESIGN.md section 4', () => {
  for (const ok of ['h1', 'A', 'p-7', 'bed_2.b', 'x'.repeat(64)]) assert.equal(validID(ok), true, ok);
  for (const bad of ['', '+', '#', 'a/b', '-a', '.a', 'x'.repeat(65), 'é', 'a b', null, 7]) {
    assert.equal(validID(bad), false, String(bad));
  }
});

test('hospitalFilters lists the nine subscriptions', () => {
  assert.deepEqual(hospitalFilters('h1'), [
    'hospital/h1/patient/+/risk',
    'hospital/h1/patient/+/alerts',
    'hospital/h1/patient/+/vitals',
    'hospital/h1/alerts',
    'hospital/h1/triage/queue',
    'hospital/h1/triage/case/+',
    'hospital/h1/bed/+',
    'hospital/h1/staff/+',
    'hospital/h1/device/+/status',
  ]);
  assert.throws(() => hospitalFilters('h/1'));
});

test('parseTopic', () => {
  const cases = [
    ['hospital/h1/patient/p7/risk', { hospital: 'h1', kind: 'risk', id: 'p7' }],
    ['hospital/h1/patient/p7/alerts', { hospital: 'h1', kind: 'patient_alerts', id: 'p7' }],
    ['hospital/h1/patient/p7/vitals', { hospital: 'h1', kind: 'vitals', id: 'p7' }],
    ['hospital/h1/alerts', { hospital: 'h1', kind: 'hospital_alerts', id: undefined }],
    ['hospital/h1/triage/queue', { hospital: 'h1', kind: 'triage_queue', id: undefined }],
    ['hospital/h1/triage/case/c1', { hospital: 'h1', kind: 'triage_case', id: 'c1' }],
    ['hospital/h1/bed/b1', { hospital: 'h1', kind: 'bed', id: 'b1' }],
    ['hospital/h1/staff/s1', { hospital: 'h1', kind: 'staff', id: 's1' }],
    ['hospital/h1/device/d1/status', { hospital: 'h1', kind: 'device_status', id: 'd1' }],
    ['hospital/h1/device/d1/errors', null],
    ['hospital/h1/patient/p7', null],
    ['hospital/h1/patient/+/risk', null],
    ['ward/h1/alerts', null],
    ['hospital//alerts', null],
    ['hospital/h1/bed/b1/extra', null],
  ];
  for (const [topic, want] of cases) assert.deepEqual(parseTopic(topic), want, topic);
});
