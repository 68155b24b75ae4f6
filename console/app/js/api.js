// The API client and the session. The token lives in sessionStorage (gone
// when the tab closes) and in this module's memory; never in localStorage, a
// cookie or a URL. The API is served from the console's own origin.
//
// A token is either pasted or the session of a person who signed in with a
// provider (GitHub, the company's OpenID provider): the server hands the
// console a one-time code in the URL fragment, which POST /auth/session
// trades for an ordinary token, kept like a pasted one, with the member's
// name and role beside it.

const STORE_KEY = 'ibyok.token';
const MEMBER_KEY = 'ibyok.member';
const listeners = new Set();

function storedMember() {
  try {
    const m = JSON.parse(sessionStorage.getItem(MEMBER_KEY));
    return m && typeof m.name === 'string' && typeof m.role === 'string' ? m : null;
  } catch {
    return null;
  }
}

export const session = {
  token: sessionStorage.getItem(STORE_KEY),
  tokenId: null,
  /** The signed-in member ({memberId, name, role}) of a provider sign-in; null for a pasted token. */
  member: storedMember(),
  /** The signed-in token's record, when it may read it (tokens:read). */
  self: null,
  scopes: new Set(),
  /** How the scopes were learned: 'record', 'probe' or 'role'. */
  scopesFrom: null,
  expiresAt: null,
};

export function onSessionChange(fn) {
  listeners.add(fn);
}

function notify(reason) {
  for (const fn of listeners) fn(reason);
}

/** Keeps a token: pasted (no member), or a provider sign-in's session (its member). */
export function signIn(token, member = null) {
  session.token = token;
  session.member = member ? {memberId: member.memberId, name: member.name, role: member.role} : null;
  sessionStorage.setItem(STORE_KEY, token);
  if (session.member) sessionStorage.setItem(MEMBER_KEY, JSON.stringify(session.member));
  else sessionStorage.removeItem(MEMBER_KEY);
}

/** Forgets the token. `reason` is shown on the sign-in page. */
export function signOut(reason = null) {
  session.token = null;
  session.tokenId = null;
  session.member = null;
  session.self = null;
  session.scopes = new Set();
  session.expiresAt = null;
  sessionStorage.removeItem(STORE_KEY);
  sessionStorage.removeItem(MEMBER_KEY);
  notify(reason);
}

/**
 * The sign-out button. A session is revoked on the server first (DELETE
 * /tokens/self), so it is dead everywhere; a pasted token is only
 * forgotten here: it may be in use elsewhere, and the tokens page revokes.
 */
export async function endSession() {
  if (!session.member) {
    signOut('Signed out. The token was forgotten.');
    return;
  }
  const until = session.expiresAt;
  try {
    await api('DELETE', '/tokens/self', {quiet401: true});
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      signOut(`Signed out in this tab, but the server could not end the session (${e.message})${until ? `: it stays valid until ${until.replace('T', ' ').replace('Z', ' UTC')}` : ''}.`);
      return;
    }
  }
  signOut('Signed out. The session was ended on the server.');
}

/** An unauthenticated request of the sign-in routes: the parsed JSON, or an ApiError. */
async function authCall(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : {'Content-Type': 'application/json'},
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      // POST /auth/session needs the HttpOnly cookie that /auth/{provider}/start set.
      credentials: 'same-origin',
      referrerPolicy: 'no-referrer',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The server could not be reached (${e.message}).`, null);
  }
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  const err = data && data.error ? data.error : {code: 'error', message: `HTTP ${res.status}`};
  throw new ApiError(res.status, err.code, err.message, res.status >= 500 ? res.headers.get('x-request-id') : null);
}

let providerList = null;

/** The sign-in providers this deployment enables ([{id, name}]); none when the route fails. */
export async function providers() {
  if (providerList) return providerList;
  try {
    const r = await authCall('GET', '/auth/providers');
    const list = (r && Array.isArray(r.providers) ? r.providers : [])
      .filter((p) => p && /^[a-z0-9-]+$/.test(p.id) && typeof p.name === 'string');
    providerList = list;
    return list;
  } catch {
    return [];
  }
}

/** Trades a provider sign-in's one-time code for a session: {token, tokenId, expiresAt, member}. */
export function redeem(code) {
  return authCall('POST', '/auth/session', {code});
}

/** Why a scope is missing, for the read-only notices: "this token lacks …" or, for a session, "your role (viewer) lacks …". */
export function lacks(scope) {
  return `${session.member ? `your role (${session.member.role})` : 'this token'} lacks the ${scope} scope`;
}

/** What a `:write` scope held implies (API.md: it counts as the `:read`; keys:read counts as keys:list). */
export function can(scope) {
  if (session.scopes.has(scope)) return true;
  if (scope === 'keys:list') return can('keys:read');
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
  const token = session.token;
  const headers = {Authorization: `Bearer ${token}`};
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
  if (expires && expires !== session.expiresAt && session.token === token) {
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
  // Only the first of several requests refused together signs out (and
  // says why); a late answer for an earlier token touches nothing.
  if (res.status === 401 && !quiet401 && session.token === token) {
    // The server gives one answer for every refused token; the expiry it
    // sent earlier tells an expired token from a revoked one.
    const expired = session.expiresAt && Date.parse(session.expiresAt) <= Date.now();
    const at = expired ? session.expiresAt.replace('T', ' ').replace('Z', ' UTC') : null;
    if (session.member) {
      signOut(expired
        ? `Your session expired at ${at}. Sign in again.`
        : 'Your session was ended (it was signed out, or your membership or role changed). Sign in again.');
    } else {
      signOut(expired
        ? `The token expired at ${at}. Sign in with a new token.`
        : 'The server refused the token (it may have been revoked, or be limited to other source addresses). Sign in again.');
    }
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
