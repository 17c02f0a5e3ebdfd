// The REST client (DESIGN.md section 8). Errors are RFC 9457 problem documents, surfaced as
// ApiError; a 401 on an authenticated call ends the session through onUnauthorized.

const BASE = '/api/v1';
const TIMEOUT_MS = 15000;
/** Upper bound on pages followed through next_cursor, so a server bug cannot loop us. */
const MAX_PAGES = 100;

export class ApiError extends Error {
  constructor(status, problem = {}, retryAfter = NaN) {
    const title = typeof problem.title === 'string' && problem.title ? problem.title : statusText(status);
    const detail = typeof problem.detail === 'string' ? problem.detail : '';
    super(detail || title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = typeof problem.type === 'string' ? problem.type : '';
    this.errors = Array.isArray(problem.errors)
      ? problem.errors.filter((e) => e && typeof e === 'object').map((e) => ({ field: String(e.field ?? ''), reason: String(e.reason ?? '') }))
      : [];
    this.retryAfter = retryAfter; // seconds, NaN when not given
  }
}

function statusText(status) {
  switch (status) {
    case 0:
      return 'Cannot reach the server';
    case 400:
      return 'Bad request';
    case 401:
      return 'Not logged in';
    case 403:
      return 'Not allowed';
    case 404:
      return 'Not found';
    case 409:
      return 'Conflict';
    case 429:
      return 'Too many requests';
    default:
      return status >= 500 ? 'Server error' : `HTTP ${status}`;
  }
}

function seg(id) {
  return encodeURIComponent(String(id));
}

/**
 * Creates the API client. getToken returns the bearer token (or ''); onUnauthorized is called
 * when an authenticated call answers 401.
 */
export function createApi({ getToken, onUnauthorized = () => {}, fetchImpl = globalThis.fetch?.bind(globalThis) } = {}) {
  async function request(method, path, { body, query, auth = true, timeout = TIMEOUT_MS } = {}) {
    let url = BASE + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
      const qs = q.toString();
      if (qs) url += `?${qs}`;
    }
    const headers = { Accept: 'application/json, application/problem+json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) {
      const token = getToken();
      if (!token) throw new ApiError(401, { detail: 'Not logged in.' });
      headers.Authorization = `Bearer ${token}`;
    }
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeout);
    let res;
    try {
      res = await fetchImpl(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ctl.signal,
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (err) {
      const detail = err?.name === 'AbortError' ? 'The server did not answer in time.' : 'Check the network connection.';
      throw new ApiError(0, { detail });
    } finally {
      clearTimeout(timer);
    }
    const text = await res.text().catch(() => '');
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const ra = Number.parseInt(res.headers.get('Retry-After') ?? '', 10);
      const err = new ApiError(res.status, data && typeof data === 'object' ? data : {}, ra);
      if (res.status === 401 && auth) onUnauthorized(err);
      throw err;
    }
    return data;
  }

  /** Fetches every page of a list endpoint by following next_cursor; at most maxItems items. */
  async function list(path, query = {}, { maxItems = Infinity } = {}) {
    const items = [];
    let cursor = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const data = await request('GET', path, { query: { ...query, cursor } });
      const got = Array.isArray(data?.items) ? data.items : [];
      items.push(...got);
      cursor = typeof data?.next_cursor === 'string' ? data.next_cursor : '';
      if (!cursor || got.length === 0 || items.length >= maxItems) break;
    }
    return items.length > maxItems ? items.slice(0, maxItems) : items;
  }

  const h = (hospital) => `/hospitals/${seg(hospital)}`;

  return {
    request,
    list,
    login: (username, password) => request('POST', '/auth/login', { body: { username, password }, auth: false }),
    me: () => request('GET', '/auth/me'),
    patients: (hospital) => list(`${h(hospital)}/patients`),
    /** Vitals history of a patient between from and to (RFC 3339; to optional), oldest first. */
    vitals: (hospital, patient, from, { to, limit = 500, maxItems = 20000 } = {}) =>
      list(`${h(hospital)}/patients/${seg(patient)}/vitals`, { from, to, limit }, { maxItems }),
    openAlerts: (hospital) => list(`${h(hospital)}/alerts`, { state: 'active,acknowledged' }),
    ack: (hospital, id, note) =>
      request('POST', `${h(hospital)}/alerts/${seg(id)}/ack`, { body: note ? { note } : {} }),
    resolve: (hospital, id, note) =>
      request('POST', `${h(hospital)}/alerts/${seg(id)}/resolve`, { body: note ? { note } : {} }),
    beds: (hospital) => list(`${h(hospital)}/beds`),
    staff: (hospital) => list(`${h(hospital)}/staff`),
    triage: (hospital) => list(`${h(hospital)}/triage`),
    broadcasts: (hospital) => list(`${h(hospital)}/broadcasts`, { limit: 50 }, { maxItems: 50 }),
  };
}

/** One line describing an error for the user. */
export function errorText(err) {
  if (err instanceof ApiError) {
    const fields = err.errors.map((e) => (e.field ? `${e.field}: ${e.reason}` : e.reason)).filter(Boolean);
    const main = err.detail || err.title;
    return fields.length ? `${main} (${fields.join('; ')})` : main;
  }
  return err?.message || String(err);
}
