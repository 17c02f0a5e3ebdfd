// The part of Vigil's topic tree (DESIGN.md section 4) that the dashboard subscribes to.

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Reports whether s is a valid Vigil ID (hospital, patient, device, bed, staff, triage case). */
export function validID(s) {
  return typeof s === 'string' && ID_RE.test(s);
}

/** The subscription filters for hospital h, all taken at QoS 1. */
export function hospitalFilters(h) {
  if (!validID(h)) throw new Error(`invalid hospital ID ${JSON.stringify(h)}`);
  const base = `hospital/${h}`;
  return [
    `${base}/patient/+/risk`,
    `${base}/patient/+/alerts`,
    `${base}/patient/+/vitals`,
    `${base}/alerts`,
    `${base}/triage/queue`,
    `${base}/triage/case/+`,
    `${base}/bed/+`,
    `${base}/staff/+`,
    `${base}/device/+/status`,
  ];
}

/**
 * Parses a topic the dashboard subscribes to.
 * Returns {hospital, kind, id} with kind one of risk, patient_alerts, vitals (id = patient),
 * hospital_alerts, triage_queue (no id), triage_case, bed, staff, device_status; or null.
 */
export function parseTopic(topic) {
  if (typeof topic !== 'string') return null;
  const s = topic.split('/');
  if (s[0] !== 'hospital' || !validID(s[1])) return null;
  const hospital = s[1];
  const r = (kind, id) => (id === undefined || validID(id) ? { hospital, kind, id } : null);
  switch (s.length) {
    case 3:
      return s[2] === 'alerts' ? r('hospital_alerts') : null;
    case 4:
      if (s[2] === 'triage' && s[3] === 'queue') return r('triage_queue');
      if (s[2] === 'bed') return r('bed', s[3]);
      if (s[2] === 'staff') return r('staff', s[3]);
      return null;
    case 5:
      if (s[2] === 'patient') {
        if (s[4] === 'risk') return r('risk', s[3]);
        if (s[4] === 'alerts') return r('patient_alerts', s[3]);
        if (s[4] === 'vitals') return r('vitals', s[3]);
        return null;
      }
      if (s[2] === 'triage' && s[3] === 'case') return r('triage_case', s[4]);
      if (s[2] === 'device' && s[4] === 'status') return r('device_status', s[3]);
      return null;
    default:
      return null;
  }
}
