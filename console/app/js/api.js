// The API client and the session. The token lives in sessionStorage (gone
// when the tab closes) and in this module's memory; never in localStorage, a
// cookie or a URL. The API is served from the console's own origin.

const STORE_KEY = 'ibyok.token';
const listeners = new Set();

export const session = {
  token: sessionStorage.getItem(STORE_KEY),
  tokenId: null,
  /** The signed-in token's record, when it may read it (tokens:read). */
  self: null,
  scopes: new Set(),
  /** How the scopes were learned: 'record' or 'probe'. */
  scopesFrom: null,
  expiresAt: null,
};

export function onSessionChange(fn) {
  listeners.add(fn);
}

function notify(reason) {
  for (const fn of listeners) fn(reason);
}

export function signIn(token) {
  session.token = token;
  sessionStorage.setItem(STORE_KEY, token);
}

/** Forgets the token. `reason` is shown on the sign-in page. */
export function signOut(reason = null) {
  session.token = null;
  session.tokenId = null;
  session.self = null;
  session.scopes = new Set();
  session.expiresAt = null;
  sessionStorage.removeItem(STORE_KEY);
  notify(reason);
}

/** What a `:write` scope held implies (API.md: it counts as the `:read`). */
export function can(scope) {
  if (session.scopes.has(scope)) return true;
  return scope.endsWith(':read') && session.scopes.has(scope.replace(':read', ':write'));
}

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
  /** A route this server does not serve yet (a later addition of API.md). */
  get missingRoute() {
    return this.status === 404 && this.message === 'no such route';
  }
}

/**
 * Calls the API. A 401 signs out (every 401 means the token is no good:
 * expired, revoked, unknown or outside its CIDRs). Other errors throw an
 * ApiError with the server's own message.
 */
export async function api(method, path, {query, body, quiet401 = false} = {}) {
  if (!session.token) throw new ApiError(401, 'unauthorized', 'Not signed in.', null);
  let url = path;
  if (query) {
    const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== null && v !== undefined && v !== ''));
    if ([...qs].length) url += `?${qs}`;
  }
  const headers = {Authorization: `Bearer ${session.token}`};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The API could not be reached (${e.message}).`, null);
  }
  const expires = res.headers.get('ibyok-token-expires-at');
  if (expires && expires !== session.expiresAt) {
    session.expiresAt = expires;
    notify('expiry');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.ok) return data;
  const err = data && data.error ? data.error : {code: 'error', message: `HTTP ${res.status}`};
  const requestId = res.status >= 500 ? res.headers.get('x-request-id') : null;
  const error = new ApiError(res.status, err.code, err.message, requestId);
  // 429 (rate_limited, quota_exceeded) and 503 say when to try again.
  const retry = Number(res.headers.get('retry-after'));
  if (retry > 0) error.retryAfter = retry;
  if (res.status === 401 && !quiet401) {
    // The server gives one answer for every refused token; the expiry it
    // sent earlier tells an expired token from a revoked one.
    const expired = session.expiresAt && Date.parse(session.expiresAt) <= Date.now();
    signOut(expired
      ? `The token expired at ${session.expiresAt.replace('T', ' ').replace('Z', ' UTC')}. Sign in with a new token.`
      : 'The server refused the token (it may have been revoked, or be limited to other source addresses). Sign in again.');
  }
  throw error;
}

/** Every item of a paged list route, following nextCursor. */
export async function listAll(path, field, {limit = 100, max = 1000} = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < max; page++) {
    const r = await api('GET', path, {query: {limit, cursor}});
    items.push(...r[field]);
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  return items;
}

export const ALL_SCOPES = ['keys:read', 'keys:write', 'tokens:read', 'tokens:write', 'settings:read', 'settings:write', 'usage:read', 'members:read', 'members:write'];
