// The console's shell: sign-in, the scopes of the signed-in token, the
// navigation, the expiry warning and the error banner.

import {api, ApiError, can, onSessionChange, session, signIn, signOut} from './api.js';
import {append, field, h, relative, absolute, replace} from './dom.js';
import {tokenIdOf, tokenProblem} from './token.js';
import {keysPage} from './keys.js';
import {tokensPage} from './tokens.js';
import {identitiesPage} from './identities.js';
import {membersPage} from './members.js';
import {modesPage} from './modes.js';
import {usagePage} from './usage.js';
import {auditPage} from './audit.js';

const PAGES = [
  {id: 'keys', title: 'Keys', needs: 'keys:read', render: keysPage},
  {id: 'tokens', title: 'Tokens', needs: 'tokens:read', render: tokensPage},
  {id: 'identities', title: 'Identities', needs: 'tokens:read', render: identitiesPage},
  {id: 'members', title: 'Members', needs: 'members:read', render: membersPage},
  {id: 'modes', title: 'Modes', needs: 'settings:read', render: modesPage},
  {id: 'usage', title: 'Usage', needs: 'usage:read', render: usagePage},
  {id: 'audit', title: 'Audit', needs: 'usage:read', render: auditPage},
];

const WEEK_MS = 7 * 86400 * 1000;
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

function signInPage() {
  const input = h('input', {type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'ibyok_…'});
  const problem = h('p', {class: 'problem', id: 'signin-problem', role: 'alert'});
  const button = h('button', {type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'signin card', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'IBYOK console'),
    h('p', {class: 'muted'}, 'Paste a token. It stays in this tab only (session storage) and is forgotten when you sign out or close the tab.'),
    signInReason ? h('p', {class: 'notice', role: 'status'}, signInReason) : null,
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
  input.focus();
}

function expiryNote() {
  if (!session.expiresAt) return null;
  const left = Date.parse(session.expiresAt) - Date.now();
  const text = `Token expires ${relative(session.expiresAt)} (${absolute(session.expiresAt)})`;
  if (left < WEEK_MS) return h('span', {class: 'expiry warn', role: 'status'}, `⚠ ${text}. Ask for a new token soon.`);
  return h('span', {class: 'expiry'}, text);
}

const header = h('header', {class: 'top'});
const nav = h('nav', {'aria-label': 'Sections'});
const main = h('main', {id: 'main', tabindex: '-1'});

function renderHeader() {
  const name = session.self ? session.self.name : session.tokenId;
  replace(header,
    h('a', {class: 'brand', href: '#/keys'}, h('img', {src: 'favicon.svg', alt: '', width: 22, height: 22}), 'IBYOK'),
    nav,
    h('div', {class: 'who'},
      h('span', {class: 'me', title: [...session.scopes].join(' ')}, 'Signed in as ', h('strong', null, name || '…')),
      expiryNote(),
      h('button', {type: 'button', class: 'secondary', onclick: () => signOut('Signed out. The token was forgotten.')}, 'Sign out')));
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
    append(main, h('p', {class: 'notice'}, `This token lacks the ${page.needs} scope, so this page is not available.`));
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

window.addEventListener('hashchange', () => renderPage());
boot();

