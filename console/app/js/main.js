// The console's shell: sign-in (with a provider or a pasted token), the
// scopes of the signed-in token, the navigation, the expiry warning and the
// error banner.

import {api, ApiError, can, endSession, lacks, onSessionChange, providers, redeem, session, signIn, signOut} from './api.js';
import {append, field, h, relative, absolute, replace, svg} from './dom.js';
import {tokenIdOf, tokenProblem} from './token.js';
import {keysPage} from './keys.js';
import {tokensPage} from './tokens.js';
import {identitiesPage} from './identities.js';
import {membersPage, ROLE_SCOPES} from './members.js';
import {modesPage} from './modes.js';
import {usagePage} from './usage.js';
import {auditPage} from './audit.js';

const PAGES = [
  {id: 'keys', title: 'Keys', needs: 'keys:list', render: keysPage},
  {id: 'tokens', title: 'Tokens', needs: 'tokens:read', render: tokensPage},
  {id: 'identities', title: 'Identities', needs: 'tokens:read', render: identitiesPage},
  {id: 'members', title: 'Members', needs: 'members:read', render: membersPage},
  {id: 'modes', title: 'Modes', needs: 'settings:read', render: modesPage},
  {id: 'usage', title: 'Usage', needs: 'usage:read', render: usagePage},
  {id: 'audit', title: 'Audit', needs: 'usage:read', render: auditPage},
];

const WEEK_MS = 7 * 86400 * 1000;
const SESSION_WARN_MS = 15 * 60 * 1000;
const app = document.getElementById('app');
let signInReason = null;
let ready = false;
let renderSeq = 0;

/** Shown above the page: the server's message as it is, and a 5xx's request id. */
export const ui = {
  banner: h('div', {class: 'banner', role: 'alert', hidden: true}),
  status: h('div', {class: 'status', role: 'status', 'aria-live': 'polite'}),
  error(err) {
    if (err instanceof ApiError && err.status === 401) return;
    const msg = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
    const parts = [h('strong', null, err instanceof ApiError && err.status ? `Error ${err.status}: ` : 'Error: '), msg];
    if (err instanceof ApiError && err.retryAfter) {
      const end = /[.!?]$/.test(msg) ? ' ' : '. ';
      parts.push(`${end}Try again ${relative(new Date(Date.now() + err.retryAfter * 1000).toISOString())}.`);
    }
    if (err instanceof ApiError && err.requestId) {
      parts.push(h('span', {class: 'reqid'}, ' Request id: ', h('code', null, err.requestId)));
    }
    parts.push(h('button', {type: 'button', class: 'link', onclick: () => ui.clear()}, 'Dismiss'));
    replace(ui.banner, parts);
    ui.banner.hidden = false;
  },
  clear() {
    ui.banner.hidden = true;
    replace(ui.banner);
  },
  say(msg) {
    replace(ui.status, msg);
  },
};

/** Learns the scopes of the signed-in token. */
async function discoverScopes() {
  session.tokenId = await tokenIdOf(session.token);
  if (session.member && ROLE_SCOPES[session.member.role]) {
    // A session holds its member's role's scopes; a change of role ends it.
    session.scopes = new Set(ROLE_SCOPES[session.member.role]);
    session.scopesFrom = 'role';
    return;
  }
  try {
    // The token's own record, when it may list its subtree: it is the
    // oldest token of that subtree, so usually on the first page.
    let cursor = null;
    for (let i = 0; i < 200; i++) {
      const r = await api('GET', '/tokens', {query: {limit: 100, cursor}});
      const me = r.tokens.find((t) => t.tokenId === session.tokenId);
      if (me) {
        session.self = me;
        session.scopes = new Set(me.scopes);
        session.scopesFrom = 'record';
        return;
      }
      cursor = r.nextCursor;
      if (!cursor) break;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) throw e;
  }
  // Without tokens:read the record is out of reach: ask each route with a
  // request the server refuses before doing anything (403 without the
  // scope; with it, 200 for a read and 400 for an empty write).
  const scopes = new Set();
  const probe = async (scope, method, path, opts) => {
    try {
      await api(method, path, opts);
      scopes.add(scope);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 400) scopes.add(scope);
      else if (e.status !== 403) throw e;
    }
  };
  await Promise.all([
    probe('keys:read', 'GET', '/keys', {query: {limit: 1}}),
    probe('settings:read', 'GET', '/settings/modes'),
    probe('usage:read', 'GET', '/audit', {query: {limit: 1}}),
    probe('members:read', 'GET', '/members', {query: {limit: 1}}),
  ]);
  const writes = [];
  if (scopes.has('keys:read')) writes.push(probe('keys:write', 'POST', '/keys', {body: {}}));
  if (scopes.has('settings:read')) writes.push(probe('settings:write', 'PUT', '/settings/modes', {body: []}));
  if (scopes.has('members:read')) writes.push(probe('members:write', 'POST', '/members', {body: {}}));
  await Promise.all(writes);
  session.scopes = scopes;
  session.scopesFrom = 'probe';
}

// The GitHub mark and a generic badge for the company's OpenID provider.
const ICONS = {
  github: 'M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.013 8.013 0 0016 8c0-4.42-3.58-8-8-8z',
  oidc: 'M8 1a3.5 3.5 0 110 7 3.5 3.5 0 010-7zm0 8.5c3.3 0 6 1.7 6 4V15H2v-1.5c0-2.3 2.7-4 6-4z',
};

/** Where the console was when its sign-in left for a provider (the route is in the fragment, which the server cannot carry). */
const ROUTE_KEY = 'ibyok.route';

function providerLink(p) {
  const back = location.pathname.startsWith('/console/') ? location.pathname : '/console/';
  const href = `/auth/${encodeURIComponent(p.id)}/start?${new URLSearchParams({returnTo: back})}`;
  const icon = svg('svg', {viewBox: '0 0 16 16', width: 18, height: 18, 'aria-hidden': 'true', focusable: 'false'},
    svg('path', {d: ICONS[p.id === 'github' ? 'github' : 'oidc'], fill: 'currentColor'}));
  return h('a', {class: ['provider', p.id === 'github' ? 'github' : 'oidc'], href, onclick: () => {
    if (/^#\/\w+/.test(location.hash)) sessionStorage.setItem(ROUTE_KEY, location.hash);
  }}, icon, h('span', null, `Sign in with ${p.name}`));
}

async function signInPage() {
  const list = await providers();
  if (session.token) return; // signed in meanwhile
  const input = h('input', {type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'ibyok_…'});
  const problem = h('p', {class: 'problem', id: 'signin-problem', role: 'alert'});
  const button = h('button', {type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'signin card', 'aria-labelledby': 'signin-title'},
    h('div', {class: 'signin-head'},
      h('img', {src: 'favicon.svg', alt: '', width: 32, height: 32}),
      h('h1', {id: 'signin-title'}, 'IBYOK console')),
    signInReason ? h('p', {class: 'notice', role: 'status'}, signInReason) : null,
    list.length ? h('section', {class: 'providers', 'aria-labelledby': 'providers-title'},
      h('h2', {id: 'providers-title', class: 'sr-only'}, 'Sign in with your account'),
      h('p', {class: 'muted'}, 'Sign in with the account your team invited. Your role in the team decides what you can do here.'),
      h('ul', null, list.map((p) => h('li', null, providerLink(p)))),
      h('p', {class: 'or', 'aria-hidden': 'true'}, h('span', null, 'or'))) : null,
    h('h2', {class: 'token-title'}, 'Sign in with a token'),
    h('p', {class: 'muted'}, 'Paste a token. It stays in this tab only (session storage) and is forgotten when you sign out or close the tab.'),
    field('Token', input),
    problem,
    button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const raw = input.value.trim();
    const why = tokenProblem(raw);
    replace(problem, why || '');
    if (why) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', problem.id);
      return;
    }
    input.value = '';
    button.disabled = true;
    replace(problem, 'Checking the token…');
    signIn(raw);
    await boot();
  });
  replace(app, h('main', {class: 'center'}, form));
  (list.length ? form.querySelector('a.provider') : input).focus();
}

/**
 * A provider sign-in comes back as `#signin=<one-time code>`: the code
 * leaves the URL at once, and is traded for a session (with the browser's
 * sign-in cookie). Then the console shows the page it was on.
 */
async function finishProviderSignIn() {
  const code = new URLSearchParams(location.hash.slice(1)).get('signin');
  const route = sessionStorage.getItem(ROUTE_KEY);
  sessionStorage.removeItem(ROUTE_KEY);
  if (code === null) return true;
  history.replaceState(null, '', `${location.pathname}${location.search}${route && /^#\/\w+$/.test(route) ? route : ''}`);
  replace(app, h('main', {class: 'center'}, h('p', {class: 'loading', role: 'status'}, 'Signing you in…')));
  try {
    const r = await redeem(code);
    signIn(r.token, r.member);
    session.expiresAt = r.expiresAt || null;
    return true;
  } catch (e) {
    // signOut shows the sign-in page with the reason.
    signOut(e instanceof ApiError && e.status === 401
      ? 'That sign-in could not be finished: its link works once, within a minute, in the browser that started it. Sign in again.'
      : `That sign-in could not be finished: ${e.message}${e.requestId ? ` (request id ${e.requestId})` : ''}`);
    return false;
  }
}

function expiryNote() {
  if (!session.expiresAt) return null;
  const left = Date.parse(session.expiresAt) - Date.now();
  if (session.member) {
    // A session is short by design: warned of in its last quarter hour.
    const text = `Session ends ${relative(session.expiresAt)} (${absolute(session.expiresAt)})`;
    if (left < SESSION_WARN_MS) return h('span', {class: 'expiry warn', role: 'status'}, `⚠ ${text}. Sign in again then.`);
    return h('span', {class: 'expiry'}, text);
  }
  const text = `Token expires ${relative(session.expiresAt)} (${absolute(session.expiresAt)})`;
  if (left < WEEK_MS) return h('span', {class: 'expiry warn', role: 'status'}, `⚠ ${text}. Ask for a new token soon.`);
  return h('span', {class: 'expiry'}, text);
}

const header = h('header', {class: 'top'});
const nav = h('nav', {'aria-label': 'Sections'});
const main = h('main', {id: 'main', tabindex: '-1'});

function renderHeader() {
  const scopes = [...session.scopes].join(' ');
  const me = session.member
    ? h('span', {class: 'me', title: `${session.member.role}: ${scopes}`}, 'Signed in as ', h('strong', null, session.member.name), ' · ', h('span', {class: 'me-role'}, session.member.role))
    : h('span', {class: 'me', title: scopes}, 'Signed in as ', h('strong', null, (session.self ? session.self.name : session.tokenId) || '…'));
  const out = h('button', {type: 'button', class: 'secondary', onclick: async () => {
    out.disabled = true;
    await endSession();
  }}, 'Sign out');
  replace(header,
    h('a', {class: 'brand', href: '#/keys'}, h('img', {src: 'favicon.svg', alt: '', width: 22, height: 22}), 'IBYOK'),
    nav,
    h('div', {class: 'who'}, me, expiryNote(), out));
}

function currentPage() {
  const id = (location.hash.match(/^#\/(\w+)/) || [])[1];
  return PAGES.find((p) => p.id === id) || PAGES.find((p) => can(p.needs)) || PAGES[0];
}

function renderNav(active) {
  replace(nav, h('ul', null, PAGES.map((p) => {
    const allowed = can(p.needs);
    return h('li', null, allowed
      ? h('a', {href: `#/${p.id}`, 'aria-current': p === active ? 'page' : null}, p.title)
      : h('span', {class: 'disabled', 'aria-disabled': 'true', title: `Needs the ${p.needs} scope`}, p.title, h('span', {class: 'sr-only'}, ` (needs ${p.needs})`)));
  })));
}

async function renderPage() {
  if (!ready) return;
  const page = currentPage();
  const seq = ++renderSeq;
  renderNav(page);
  ui.clear();
  ui.say('');
  document.title = `${page.title} · IBYOK console`;
  replace(main, h('h1', null, page.title));
  if (!can(page.needs)) {
    const why = lacks(page.needs);
    append(main, h('p', {class: 'notice'}, `${why[0].toUpperCase()}${why.slice(1)}, so this page is not available.`));
    return;
  }
  const body = h('div', {class: 'page', 'aria-busy': 'true'});
  append(main, body);
  try {
    await page.render(body, {ui, stale: () => seq !== renderSeq});
  } catch (e) {
    ui.error(e);
  } finally {
    body.removeAttribute('aria-busy');
    if (seq === renderSeq) main.dataset.rendered = page.id;
  }
}

async function boot() {
  if (!ready && !(await finishProviderSignIn())) return;
  if (!session.token) {
    ready = false;
    signInPage();
    return;
  }
  const why = tokenProblem(session.token);
  if (why) {
    signOut(why);
    return;
  }
  try {
    await discoverScopes();
  } catch (e) {
    if (!session.token) return; // a 401 signed out already
    signOut(`Could not sign in: ${e.message}${e.requestId ? ` (request id ${e.requestId})` : ''}`);
    return;
  }
  signInReason = null;
  ready = true;
  watchExpiry(); // a session's expiry is known from its sign-in already
  replace(app, header, h('div', {class: 'wrap'}, ui.banner, ui.status, main));
  renderHeader();
  await renderPage();
}

// At the token's expiry the page asks the server once (a cheap read the
// token may make): its 401 signs out with the reason, so an expired token
// goes back to sign-in even when nobody clicks. A server that still takes
// the token (the clocks differ) is asked again a minute later.
const MAX_TIMER_MS = 2 ** 31 - 1;
const PROBES = [['keys:read', '/keys'], ['tokens:read', '/tokens'], ['usage:read', '/audit'], ['settings:read', '/settings/modes']];
let expiryTimer = null;

function watchExpiry(delay = null) {
  clearTimeout(expiryTimer);
  if (!session.token || !session.expiresAt) return;
  const left = Date.parse(session.expiresAt) - Date.now() + 1000;
  expiryTimer = setTimeout(checkExpiry, Math.min(MAX_TIMER_MS, delay ?? Math.max(0, left)));
}

async function checkExpiry() {
  if (!session.token) return;
  if (Date.parse(session.expiresAt) > Date.now()) {
    watchExpiry();
    return;
  }
  const probe = PROBES.find(([scope]) => can(scope));
  const path = probe ? probe[1] : '/keys';
  try {
    await api('GET', path, {query: path === '/settings/modes' ? undefined : {limit: 1}});
  } catch {
    // a 401 signed out already; anything else: try again below
  }
  if (session.token) watchExpiry(60_000);
}

onSessionChange((reason) => {
  if (reason === 'expiry') {
    if (ready) renderHeader();
    watchExpiry();
    return;
  }
  if (!session.token) {
    clearTimeout(expiryTimer);
    ready = false;
    signInReason = reason;
    signInPage();
  }
});

window.addEventListener('hashchange', () => {
  // A sign-in code arriving in a page already open (a same-document navigation).
  if (new URLSearchParams(location.hash.slice(1)).has('signin')) {
    ready = false;
    boot();
  } else {
    renderPage();
  }
});
boot();

