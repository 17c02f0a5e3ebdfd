// The login session (token, expiry, user) in sessionStorage, and the remembered hospitals in
// localStorage. The token never goes to localStorage: it dies with the tab.

const SESSION_KEY = 'vigil.session';
const HOSPITAL_KEY = 'vigil.hospital';
const RECENT_KEY = 'vigil.recentHospitals';
const RECENT_MAX = 5;

function storage(kind) {
  try {
    return kind === 'local' ? globalThis.localStorage : globalThis.sessionStorage;
  } catch {
    return null; // storage disabled
  }
}

/** Decodes a JWT's claims without checking it (the server does that); null if unreadable. */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** Expiry of a session in epoch ms: expires_at (RFC 3339 or epoch), else the token's exp. */
export function expiryOf(session) {
  const e = session?.expires_at;
  if (typeof e === 'string' && e !== '') {
    const t = Date.parse(e);
    if (Number.isFinite(t)) return t;
  }
  if (typeof e === 'number' && Number.isFinite(e)) return e < 1e12 ? e * 1000 : e;
  const exp = jwtClaims(session?.token ?? '')?.exp;
  return Number.isFinite(exp) ? exp * 1000 : NaN;
}

/** Builds a session from a login answer; throws when the answer is unusable. */
export function sessionFrom(answer, username) {
  if (!answer || typeof answer.token !== 'string' || answer.token === '') {
    throw new Error('the server answered without a token');
  }
  const claims = jwtClaims(answer.token) || {};
  const u = answer.user && typeof answer.user === 'object' ? answer.user : {};
  const user = {
    username: typeof u.username === 'string' && u.username ? u.username : claims.sub || username,
    role: typeof u.role === 'string' && u.role ? u.role : claims.role || 'viewer',
    hospitals: Array.isArray(u.hospitals) ? u.hospitals : Array.isArray(claims.hospitals) ? claims.hospitals : [],
  };
  return { token: answer.token, expires_at: answer.expires_at ?? null, user };
}

export function loadSession(now = Date.now()) {
  const s = storage('session');
  if (!s) return null;
  try {
    const v = JSON.parse(s.getItem(SESSION_KEY) || 'null');
    if (!v || typeof v.token !== 'string' || !v.user) return null;
    const exp = expiryOf(v);
    if (Number.isFinite(exp) && exp <= now) {
      clearSession();
      return null;
    }
    return v;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  storage('session')?.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  const s = storage('session');
  s?.removeItem(SESSION_KEY);
  s?.removeItem(HOSPITAL_KEY);
}

/** The hospital chosen in this tab, if any. */
export function savedHospital() {
  return storage('session')?.getItem(HOSPITAL_KEY) || '';
}

/** Remembers h for this tab and as the most recently used one (admins pick from these). */
export function rememberHospital(h) {
  storage('session')?.setItem(HOSPITAL_KEY, h);
  const l = storage('local');
  if (!l) return;
  const list = [h, ...recentHospitals().filter((x) => x !== h)].slice(0, RECENT_MAX);
  l.setItem(RECENT_KEY, JSON.stringify(list));
}

export function recentHospitals() {
  try {
    const v = JSON.parse(storage('local')?.getItem(RECENT_KEY) || '[]');
    return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** Roles that may acknowledge and resolve alerts (DESIGN.md section 8: nurse+). */
export function canHandleAlerts(user) {
  return ['nurse', 'clinician', 'admin'].includes(user?.role);
}
