// Browser tests of people's sign-in to the console (scripts/console-test
// runs them after console.test.mjs): a real OpenID provider (npm
// `oidc-provider`, in this process, with its development login pages) and a
// GitHub stand-in (authorize, access_token, /user), against two `ibyok dev`
// servers started with the sign-in flags. Every console page is checked for
// CSP violations, console errors, requests to other origins and serious or
// critical axe-core violations, and screenshotted.
//
// Environment: CHROMIUM, OUT_DIR; BASE_C/TOKEN_C (`--signup closed`) and
// BASE_D/TOKEN_D (`--signup open`), both with OIDC_PORT, OIDC_CLIENT_SECRET,
// OIDC_NAME, GITHUB_PORT, GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET as their
// providers, and the OpenID client ids OIDC_CLIENT_ID + "-C" and + "-D" (the
// script chose the ports and the secrets; this file serves those ports).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {createRequire} from 'node:module';
import {chromium} from 'playwright-core';
import Provider from 'oidc-provider';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = process.env;
const {CHROMIUM, OUT_DIR, BASE_C, TOKEN_C, BASE_D, TOKEN_D} = env;
const OIDC_NAME = env.OIDC_NAME || 'Acme SSO';
const ISSUER = `http://127.0.0.1:${env.OIDC_PORT}`;
const GITHUB = `http://127.0.0.1:${env.GITHUB_PORT}`;
fs.mkdirSync(OUT_DIR, {recursive: true});

const results = [];
const tabs = [];
const figures = {};
function ok(cond, msg) {
  if (!cond) throw new Error(`FAILED: ${msg}`);
}
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, 'ok', Date.now() - t0]);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, 'FAILED', Date.now() - t0]);
    console.log(`FAIL ${name}\n${e.stack || e}`);
    for (const [i, t] of tabs.entries()) {
      if (t.page.isClosed()) continue;
      console.log(`tab ${i} (${t.who}) at ${t.page.url()}: ${t.problems.join('\n') || 'no problems logged'}`);
      await t.page.screenshot({path: path.join(OUT_DIR, `FAILED-signin-tab${i}.png`)}).catch(() => {});
    }
    if (peerLog.length) console.log(`the peers' last requests:\n  ${peerLog.slice(-12).join('\n  ')}`);
    throw e;
  }
}

// The API from the test itself (setup and checks), not through the page.
async function call(base, token, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: {Authorization: `Bearer ${token}`, ...(body ? {'Content-Type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return {status: res.status, body: data};
}
async function invite(base, token, body) {
  const r = await call(base, token, 'POST', '/members', body);
  ok(r.status === 201, `POST /members ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
async function member(base, token, memberId) {
  const all = (await call(base, token, 'GET', '/members?limit=100')).body.members;
  return all.find((m) => m.memberId === memberId);
}

/** What the peers were asked, for a failure's log. */
const peerLog = [];

// ------------------------------------------------------------ OpenID provider
// The people of the OpenID provider, by the login typed at its development
// login page. `sub` is their stable id there, distinct from the email (the
// pairwise identifier below maps one to the other), as at a real provider.
const PEOPLE = {
  'ana@acme.example': {sub: 'acme-00001', name: 'Ana Lima'},
  'bo@acme.example': {sub: 'acme-00002', name: 'Bo Berg'},
  'vic@acme.example': {sub: 'acme-00003', name: 'Vic Vale'},
  'dee@acme.example': {sub: 'acme-00004', name: 'Dee Dahl'},
  'eve@acme.example': {sub: 'acme-00005', name: 'Eve Ernst'},
  // Invited, but the provider has not verified this address.
  'ivy@acme.example': {sub: 'acme-00006', name: 'Ivy Iles', unverified: true},
  'zoe@newco.example': {sub: 'newco-00001', name: 'Zoe Zhang'},
};
// One client per server: a pairwise client's redirect URIs share one host:port.
const provider = new Provider(ISSUER, {
  clients: [['C', BASE_C], ['D', BASE_D]].map(([name, base]) => ({
    client_id: `${env.OIDC_CLIENT_ID}-${name}`,
    client_secret: env.OIDC_CLIENT_SECRET,
    redirect_uris: [`${base}/auth/oidc/callback`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: env.OIDC_AUTH_METHOD || 'client_secret_basic',
    subject_type: 'pairwise',
  })),
  pkce: {required: () => true},
  scopes: ['openid', 'email', 'profile'],
  claims: {openid: ['sub'], email: ['email', 'email_verified'], profile: ['name']},
  // The claims of the scopes asked for go into the ID token itself (the
  // server reads the person from it), not only into userinfo.
  conformIdTokenClaims: false,
  subjectTypes: ['public', 'pairwise'],
  pairwiseIdentifier: async (ctx, accountId) => (PEOPLE[accountId] ? PEOPLE[accountId].sub : `unknown-${accountId}`),
  features: {devInteractions: {enabled: true}},
  cookies: {keys: [crypto.randomBytes(16).toString('hex')]},
  async findAccount(ctx, id) {
    const p = PEOPLE[id];
    if (!p) return undefined;
    return {accountId: id, claims: async () => ({sub: id, email: id, email_verified: !p.unverified, name: p.name})};
  },
});
provider.on('server_error', (ctx, err) => peerLog.push(`oidc-provider server_error: ${err.stack || err}`));
provider.on('grant.error', (ctx, err) => peerLog.push(`oidc-provider grant.error: ${err.message} ${err.error_description || ''}`));
const oidcHandler = provider.callback();
const oidcServer = http.createServer((req, res) => {
  peerLog.push(`oidc ${req.method} ${req.url.split('?')[0]}`);
  oidcHandler(req, res);
});
await new Promise((resolve, reject) => oidcServer.once('error', reject).listen(Number(env.OIDC_PORT), '127.0.0.1', resolve));

// ------------------------------------------------------------ GitHub stand-in
// Accounts by numeric id; a rename or a login handed to another id is a
// change of this map. /login/oauth/authorize shows a small page where the
// person types the login they are signed in to GitHub with and authorizes.
const gh = {
  users: new Map([[583231, {id: 583231, login: 'octocat', name: 'Mona Lisa Octocat', email: 'mona@github.example'}]]),
  grants: new Map(), // code → {userId, redirectUri, challenge}
  tokens: new Map(), // access token → userId
};
const ghRedirects = [BASE_C, BASE_D].map((b) => `${b}/auth/github/callback`);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
function ghPage(res, status, title, body) {
  res.writeHead(status, {'content-type': 'text/html; charset=utf-8', connection: 'close',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'"});
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font:15px system-ui,sans-serif;background:#f6f8fa;color:#1f2328;display:grid;place-items:center;min-height:90vh;margin:0}
main{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1.5rem 2rem;width:22rem}
h1{font-size:1.2rem;margin:0 0 1rem}label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}button{margin-top:1rem;width:100%;padding:.5rem;font:inherit;font-weight:600;
background:#1f883d;color:#fff;border:0;border-radius:6px}</style></head><body><main><h1>${esc(title)}</h1>${body}</main></body></html>`);
}
function ghJson(res, status, body) {
  res.writeHead(status, {'content-type': 'application/json; charset=utf-8', connection: 'close'});
  res.end(JSON.stringify(body));
}
async function readBody(req) {
  let b = '';
  for await (const c of req) b += c;
  return b;
}
const githubServer = http.createServer(async (req, res) => {
  const u = new URL(req.url, GITHUB);
  peerLog.push(`github ${req.method} ${u.pathname}`);
  const q = u.searchParams;
  if (req.method === 'GET' && u.pathname === '/login/oauth/authorize') {
    if (q.get('client_id') !== env.GITHUB_CLIENT_ID) return ghPage(res, 400, 'Unknown application', '<p>No such client_id.</p>');
    if (!ghRedirects.includes(q.get('redirect_uri'))) return ghPage(res, 400, 'Redirect URI mismatch', `<p>${esc(q.get('redirect_uri'))}</p>`);
    if (!q.get('state')) return ghPage(res, 400, 'No state', '<p>The request has no state.</p>');
    const keep = ['client_id', 'redirect_uri', 'state', 'code_challenge', 'code_challenge_method']
      .filter((k) => q.get(k)).map((k) => `<input type="hidden" name="${k}" value="${esc(q.get(k))}">`).join('');
    return ghPage(res, 200, 'Authorize IBYOK (GitHub stand-in)',
      `<form method="get" action="/login/oauth/authorize/approve">${keep}<label for="login">Signed in to GitHub as</label>
<input id="login" name="login" required autocomplete="off"><button type="submit">Authorize</button></form>`);
  }
  if (req.method === 'GET' && u.pathname === '/login/oauth/authorize/approve') {
    const user = [...gh.users.values()].find((x) => x.login.toLowerCase() === (q.get('login') || '').toLowerCase());
    if (!user) return ghPage(res, 404, 'No such GitHub account', `<p>${esc(q.get('login'))}</p>`);
    const code = crypto.randomBytes(10).toString('hex');
    gh.grants.set(code, {userId: user.id, redirectUri: q.get('redirect_uri'), challenge: q.get('code_challenge'), method: q.get('code_challenge_method')});
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    res.writeHead(302, {location: back.href, connection: 'close'});
    return res.end();
  }
  if (req.method === 'POST' && u.pathname === '/login/oauth/access_token') {
    const form = new URLSearchParams(await readBody(req));
    const basic = (req.headers.authorization || '').match(/^Basic (.+)$/i);
    const [id, secret] = basic ? Buffer.from(basic[1], 'base64').toString().split(':') : [form.get('client_id'), form.get('client_secret')];
    const grant = gh.grants.get(form.get('code'));
    gh.grants.delete(form.get('code'));
    let error = null;
    if (id !== env.GITHUB_CLIENT_ID || secret !== env.GITHUB_CLIENT_SECRET) error = 'incorrect_client_credentials';
    else if (!grant) error = 'bad_verification_code';
    else if (form.get('redirect_uri') && form.get('redirect_uri') !== grant.redirectUri) error = 'redirect_uri_mismatch';
    else if (grant.challenge) {
      const verifier = form.get('code_verifier') || '';
      const s256 = crypto.createHash('sha256').update(verifier).digest('base64url');
      if ((grant.method === 'S256' ? s256 : verifier) !== grant.challenge) error = 'bad_verification_code';
    }
    const body = error ? {error, error_description: error} : {access_token: `gho_${crypto.randomBytes(18).toString('hex')}`, token_type: 'bearer', scope: 'read:user'};
    if (!error) gh.tokens.set(body.access_token, grant.userId);
    else peerLog.push(`github access_token refused: ${error}`);
    // GitHub answers 200 either way; JSON when asked for it, a form otherwise.
    if ((req.headers.accept || '').includes('application/json')) return ghJson(res, 200, body);
    res.writeHead(200, {'content-type': 'application/x-www-form-urlencoded', connection: 'close'});
    return res.end(new URLSearchParams(body).toString());
  }
  if (req.method === 'GET' && u.pathname === '/user') {
    const auth = (req.headers.authorization || '').match(/^(?:Bearer|token) (.+)$/i);
    const user = auth && gh.users.get(gh.tokens.get(auth[1]));
    if (!user) return ghJson(res, 401, {message: 'Bad credentials'});
    return ghJson(res, 200, {...user, type: 'User', avatar_url: `${GITHUB}/avatars/${user.id}`});
  }
  return ghJson(res, 404, {message: 'Not Found'});
});
await new Promise((resolve, reject) => githubServer.once('error', reject).listen(Number(env.GITHUB_PORT), '127.0.0.1', resolve));

// ------------------------------------------------------------ the browser
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
});

/**
 * A person's browser (its own context: cookies at the providers, session
 * storage) on `base`, with the problem log of the console's pages.
 */
async function person(who, base) {
  const context = await browser.newContext({viewport: {width: 1280, height: 860}});
  // Nothing leaves the machine (oidc-provider's pages import a web font).
  await context.route((url) => url.hostname !== '127.0.0.1', (r) => r.abort());
  const page = await context.newPage();
  const origin = new URL(base).origin;
  const problems = [];
  const onConsole = () => new URL(page.url()).origin === origin;
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page.on('console', (m) => {
    if (m.type() !== 'error' || !onConsole()) return;
    // Chromium logs every 4xx answer; some are on purpose here (a used code, a revoked session).
    if (!/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (r.isNavigationRequest() || !onConsole() || u.protocol === 'data:' || u.protocol === 'blob:') return;
    if (u.origin !== origin) problems.push(`request to another origin: ${r.url()}`);
  });
  // The sign-in callback's answers (a redirect with the code, or a refusal page).
  const callbacks = [];
  page.on('response', (r) => {
    if (/\/auth\/(oidc|github)\/callback/.test(r.url())) callbacks.push({status: r.status(), location: r.headers().location || null});
  });
  const t = {who, base, context, page, problems, callbacks};
  tabs.push(t);
  return t;
}

/** The checks every console page gets, and its screenshot. */
async function check(t, shot) {
  const {page, problems} = t;
  const csp = await page.evaluate(() => window.__csp);
  ok(csp.length === 0, `${shot}: CSP violations ${JSON.stringify(csp)}`);
  await page.evaluate(axeSource);
  const axe = await page.evaluate(async () => {
    const r = await window.axe.run(document, {resultTypes: ['violations']});
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  ok(axe.length === 0, `${shot}: axe ${JSON.stringify(axe, null, 1)}`);
  ok(problems.length === 0, `${shot}: ${problems.join('\n')}`);
  await shoot(t, shot);
}
async function shoot(t, shot) {
  await t.page.screenshot({path: path.join(OUT_DIR, `${shot}.png`), fullPage: false});
}

/** Waits until the page is back on the console's server, clicking through oidc-provider's consent on the way. */
async function backAtServer(t, timeout = 20000) {
  const origin = new URL(t.base).origin;
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    try {
      if (new URL(t.page.url()).origin === origin) {
        await t.page.waitForLoadState('load');
        return;
      }
      const consent = t.page.locator('button.login-submit', {hasText: 'Continue'});
      if (await consent.count() && await consent.isVisible()) {
        await consent.click();
        continue;
      }
    } catch {
      // a navigation in between: look again
    }
    await t.page.waitForTimeout(100);
  }
  throw new Error(`FAILED: ${t.who} did not come back from the provider (at ${t.page.url()})`);
}

/**
 * Signs `t` in through the OpenID provider from the console's sign-in page
 * (`route` the console page it starts on); returns when the browser is back
 * at the server (the console, or a refusal page).
 */
async function oidcSignIn(t, login, route = 'keys', shot = null) {
  await t.page.goto(`${t.base}/console/#/${route}`);
  const link = t.page.getByRole('link', {name: `Sign in with ${OIDC_NAME}`});
  await link.waitFor();
  const t0 = Date.now();
  await link.click();
  await t.page.waitForURL(`${ISSUER}/**`);
  await t.page.locator('input[name="login"]').fill(login);
  await t.page.locator('input[name="password"]').fill('any password');
  if (shot) await shoot(t, shot);
  await t.page.locator('button.login-submit', {hasText: 'Sign-in'}).click();
  await backAtServer(t);
  return t0;
}

/** The same through the GitHub stand-in, signed in to "GitHub" as `login`. */
async function githubSignIn(t, login, shot = null) {
  await t.page.goto(`${t.base}/console/`);
  await t.page.getByRole('link', {name: 'Sign in with GitHub'}).click();
  await t.page.waitForURL(`${GITHUB}/**`);
  await t.page.getByLabel('Signed in to GitHub as').fill(login);
  if (shot) await shoot(t, shot);
  await t.page.getByRole('button', {name: 'Authorize'}).click();
  await backAtServer(t);
}

/** Waits for the console to show a page after a sign-in; returns the header's text. */
async function signedIn(t, page) {
  await t.page.waitForSelector(`main[data-rendered="${page}"]`);
  return (await t.page.textContent('header .me')).replace(/\s+/g, ' ').trim();
}

/** Folds the page's "Create …" forms, so that a screenshot shows the table. */
const fold = (t) => t.page.evaluate(() => document.querySelectorAll('details.card[open]').forEach((d) => { d.open = false; }));

const storedToken = (t) => t.page.evaluate(() => sessionStorage.getItem('ibyok.token'));

const SECRET = `sk-signin-secret-${crypto.randomBytes(6).toString('hex')}-Zq42`;
let keyId;
let ana;
let anaToken;
/** The token Ana creates from her session: {token, tokenId}. */
let anaCi;
let anaIdentity;

try {
  await step('the sign-in routes: the providers listed, a start sets the cookie and sends to the provider with PKCE', async () => {
    const r = await fetch(`${BASE_C}/auth/providers`);
    const body = await r.json();
    ok(r.status === 200, `GET /auth/providers ${r.status}`);
    const ids = body.providers.map((p) => `${p.id}:${p.name}`).sort();
    ok(JSON.stringify(ids) === JSON.stringify(['github:GitHub', `oidc:${OIDC_NAME}`]), `providers ${JSON.stringify(body)}`);
    const start = await fetch(`${BASE_C}/auth/oidc/start?returnTo=${encodeURIComponent('/console/')}`, {redirect: 'manual'});
    ok(start.status === 302, `start ${start.status}`);
    const to = new URL(start.headers.get('location'));
    ok(to.origin === ISSUER, `to the issuer's authorization endpoint: ${to}`);
    for (const p of ['state', 'nonce', 'code_challenge']) ok(to.searchParams.get(p), `the authorization request has ${p}: ${to}`);
    ok(to.searchParams.get('code_challenge_method') === 'S256', 'PKCE S256');
    ok(to.searchParams.get('redirect_uri') === `${BASE_C}/auth/oidc/callback`, `redirect_uri ${to.searchParams.get('redirect_uri')}`);
    ok(/\bopenid\b/.test(to.searchParams.get('scope')) && /\bemail\b/.test(to.searchParams.get('scope')), `scope ${to.searchParams.get('scope')}`);
    const cookie = start.headers.get('set-cookie') || '';
    ok(/^ibyok_signin=/.test(cookie) && /HttpOnly/i.test(cookie) && /SameSite=Lax/i.test(cookie) && /Path=\/auth(;|$)/i.test(cookie), `the cookie: ${cookie}`);
    const gstart = await fetch(`${BASE_C}/auth/github/start`, {redirect: 'manual'});
    const gto = new URL(gstart.headers.get('location'));
    ok(gstart.status === 302 && `${gto.origin}${gto.pathname}` === `${GITHUB}/login/oauth/authorize` && gto.searchParams.get('state') &&
      gto.searchParams.get('client_id') === env.GITHUB_CLIENT_ID, `the GitHub start: ${gstart.status} ${gto}`);
    for (const bad of ['https://elsewhere.example/console/', '//elsewhere.example/console/', '/keys', '/console']) {
      const refused = await fetch(`${BASE_C}/auth/oidc/start?returnTo=${encodeURIComponent(bad)}`, {redirect: 'manual'});
      ok(refused.status === 400, `returnTo ${bad}: ${refused.status}`);
    }
    ok((await fetch(`${BASE_C}/auth/nosuch/start`, {redirect: 'manual'})).status === 404, 'an unknown provider is 404');
  });

  await step('setup: the root invites four people by email and adds a key', async () => {
    ana = await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'ana@acme.example', role: 'owner', name: 'Ana Lima'});
    await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'bo@acme.example', role: 'developer', name: 'Bo Berg'});
    await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'vic@acme.example', role: 'viewer', name: 'Vic Vale'});
    await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'dee@acme.example', role: 'developer', name: 'Dee Dahl'});
    const k = await call(BASE_C, TOKEN_C, 'POST', '/keys', {name: 'OpenAI Production', llmType: 'openai', value: SECRET});
    ok(k.status === 201, `POST /keys ${k.status}`);
    keyId = k.body.keyId;
  });

  await step('(a) an invited member signs in through the OpenID provider: name and role in the header, then the keys page', async () => {
    const t = await person('ana', BASE_C);
    await t.page.goto(`${BASE_C}/console/#/members`);
    await t.page.getByRole('link', {name: `Sign in with ${OIDC_NAME}`}).waitFor();
    ok(await t.page.getByRole('link', {name: 'Sign in with GitHub'}).isVisible(), 'the GitHub button');
    ok(await t.page.getByRole('heading', {name: 'Sign in with a token'}).isVisible() && await t.page.getByLabel('Token').isVisible(),
      'the token field, under "Sign in with a token"');
    const order = await t.page.evaluate(() => {
      const a = document.querySelector('a.provider');
      const input = document.querySelector('input[name="token"]');
      return Boolean(a.compareDocumentPosition(input) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    ok(order, 'the providers come above the token field');
    const href = await t.page.getByRole('link', {name: `Sign in with ${OIDC_NAME}`}).getAttribute('href');
    ok(href === '/auth/oidc/start?returnTo=%2Fconsole%2F', `the link: ${href}`);
    await check(t, 'signin-providers');
    const t0 = await oidcSignIn(t, 'ana@acme.example', 'members', 'signin-oidc-provider-login');
    const header = await signedIn(t, 'members');
    figures['OpenID sign-in: click on the provider button to the console rendered (login typed in between)'] = `${Date.now() - t0} ms`;
    ok(header === 'Signed in as Ana Lima · owner', `the header: ${header}`);
    const cb = t.callbacks.at(-1);
    ok(cb && cb.status === 302 && /^\/console\/#signin=[^&]+$/.test(new URL(cb.location, BASE_C).pathname + new URL(cb.location, BASE_C).hash),
      `the callback: ${JSON.stringify(t.callbacks)}`);
    ok(t.page.url() === `${BASE_C}/console/#/members`, `the code left the URL, the page it started on is shown: ${t.page.url()}`);
    anaToken = await storedToken(t);
    ok(/^ibyok_[0-9A-Za-z]{38}$/.test(anaToken || ''), 'the session token is kept like a pasted one');
    ok(await t.page.evaluate(() => localStorage.length) === 0, 'localStorage is empty');
    const cookies = await t.context.cookies(BASE_C);
    ok(cookies.every((c) => !c.value.includes(anaToken)), 'the token is in no cookie');
    const signinCookie = (await t.context.cookies(`${BASE_C}/auth/session`)).find((c) => c.name === 'ibyok_signin');
    ok(!signinCookie || (signinCookie.httpOnly && signinCookie.path === '/auth'), `the sign-in cookie: ${JSON.stringify(signinCookie)}`);
    ok(await t.page.locator('tr', {hasText: 'ana@acme.example'}).locator('text=invited').count() === 0, 'Ana is bound (no longer "invited")');
    await check(t, 'signin-oidc-members');
    const bound = await member(BASE_C, TOKEN_C, ana.memberId);
    ok(bound.subject === 'acme-00001' && bound.lastSignInAt, `bound to the provider's sub: ${JSON.stringify(bound)}`);
    // The code worked once: again, from the same browser, it is refused.
    const code = new URL(cb.location, BASE_C).hash.replace(/^#signin=/, '');
    const again = await t.page.evaluate(async (c) => {
      const r = await fetch('/auth/session', {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({code: c})});
      return {status: r.status, body: await r.json().catch(() => null)};
    }, code);
    ok(again.status === 401 && again.body && again.body.error && again.body.error.code === 'unauthorized', `a used code: ${JSON.stringify(again)}`);
    await t.page.getByRole('link', {name: 'Keys'}).click();
    await t.page.waitForSelector('main[data-rendered="keys"]');
    ok(await t.page.isVisible(`tr[data-key="${keyId}"] >> text=…Zq42`), 'the key and its preview');
    ok(await t.page.locator('header .expiry').count() === 1 && /^Session ends in (11|12) hours/.test(await t.page.textContent('header .expiry')),
      `the session's end: ${await t.page.textContent('header .expiry').catch(() => null)}`);
    await check(t, 'signin-oidc-keys');
    ana.tab = t;
  });

  await step('a used or unknown sign-in code shows a readable message on the sign-in page', async () => {
    const t = await person('stale code', BASE_C);
    await t.page.goto(`${BASE_C}/console/#signin=not-a-code-${crypto.randomBytes(6).toString('hex')}`);
    await t.page.waitForSelector('form.signin >> text=That sign-in could not be finished');
    ok(!t.page.url().includes('signin='), `the code left the URL: ${t.page.url()}`);
    ok(await t.page.evaluate(() => sessionStorage.length) === 0, 'nothing kept');
    await check(t, 'signin-code-refused');
    await t.context.close();
  });

  await step('(b) a person who is no member is refused: the 403 page, with a way back; so is an unverified email', async () => {
    const t = await person('eve', BASE_C);
    await oidcSignIn(t, 'eve@acme.example');
    const cb = t.callbacks.at(-1);
    ok(cb && cb.status === 403, `the callback answers 403: ${JSON.stringify(t.callbacks)}`);
    ok(t.page.url().startsWith(`${BASE_C}/auth/oidc/callback`), `on the refusal page: ${t.page.url()}`);
    const back = t.page.locator('a[href="/console/"], a[href$="/console/"]');
    ok(await back.count() >= 1, `a link back to the console: ${await t.page.content()}`);
    await check(t, 'signin-refused-not-member');
    await back.first().click();
    await t.page.waitForSelector('form.signin');
    ok(await t.page.evaluate(() => sessionStorage.getItem('ibyok.token')) === null, 'no session');
    ok((await call(BASE_C, TOKEN_C, 'GET', '/members?limit=100')).body.members.every((m) => m.email !== 'eve@acme.example'), 'no member was made');
    await t.context.close();
    // An invited email that the provider has not verified matches nobody.
    const ivy = await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'ivy@acme.example', role: 'viewer'});
    const u = await person('ivy', BASE_C);
    await oidcSignIn(u, 'ivy@acme.example');
    ok(u.callbacks.at(-1) && u.callbacks.at(-1).status === 403, `an unverified email is refused: ${JSON.stringify(u.callbacks)}`);
    ok(!(await member(BASE_C, TOKEN_C, ivy.memberId)).subject, 'the invitation stays unbound');
    await u.context.close();
  });

  await step('(c) open sign-up: a stranger’s sign-in makes a tenant with them as its owner', async () => {
    const rootKey = await call(BASE_D, TOKEN_D, 'POST', '/keys', {name: 'Dev tenant key', llmType: 'openai', value: 'sk-dev-tenant-0000000000'});
    ok(rootKey.status === 201, `a key in the dev tenant: ${rootKey.status}`);
    const t = await person('zoe', BASE_D);
    await oidcSignIn(t, 'zoe@newco.example');
    const header = await signedIn(t, 'keys');
    ok(/^Signed in as .+ · owner$/.test(header) && header.includes('Zoe Zhang'), `the header: ${header}`);
    ok(await t.page.isVisible('text=No keys yet.'), 'a new, empty tenant (the dev tenant’s key is not there)');
    await check(t, 'signup-new-tenant');
    await t.page.getByRole('link', {name: 'Members'}).click();
    await t.page.waitForSelector('main[data-rendered="members"]');
    const rows = await t.page.locator('table.members tbody tr').allTextContents();
    ok(rows.length === 1 && rows[0].includes('zoe@newco.example') && /owner/i.test(rows[0]), `the members: ${JSON.stringify(rows)}`);
    await check(t, 'signup-members');
    const devMembers = (await call(BASE_D, TOKEN_D, 'GET', '/members?limit=100')).body.members;
    ok(devMembers.every((m) => m.email !== 'zoe@newco.example'), 'not a member of the dev tenant');
    const zoeToken = await storedToken(t);
    const keys = await call(BASE_D, zoeToken, 'GET', '/keys');
    ok(keys.status === 200 && keys.body.keys.length === 0, `her token sees her tenant only: ${JSON.stringify(keys.body)}`);
    await t.context.close();
  });

  await step('(d) a removed member’s open console goes back to sign-in at its next request; a demoted one’s session ends', async () => {
    const t = await person('bo', BASE_C);
    await oidcSignIn(t, 'bo@acme.example');
    ok(await signedIn(t, 'keys') === 'Signed in as Bo Berg · developer', 'Bo is signed in');
    const token = await storedToken(t);
    const bo = (await call(BASE_C, TOKEN_C, 'GET', '/members?limit=100')).body.members.find((m) => m.email === 'bo@acme.example');
    ok((await call(BASE_C, TOKEN_C, 'DELETE', `/members/${bo.memberId}`)).status === 204, 'removed');
    await t.page.getByRole('link', {name: 'Usage'}).click();
    await t.page.waitForSelector('form.signin >> text=Your session was ended');
    ok(await t.page.evaluate(() => sessionStorage.length) === 0, 'the session is forgotten');
    ok((await call(BASE_C, token, 'GET', '/keys')).status === 401, 'the server refuses it');
    await check(t, 'signin-after-removal');
    await t.context.close();
    // A lower role: the session ends too (the next request is a 401).
    const u = await person('dee', BASE_C);
    await oidcSignIn(u, 'dee@acme.example');
    await signedIn(u, 'keys');
    const deeToken = await storedToken(u);
    const dee = (await call(BASE_C, TOKEN_C, 'GET', '/members?limit=100')).body.members.find((m) => m.email === 'dee@acme.example');
    ok((await call(BASE_C, TOKEN_C, 'PATCH', `/members/${dee.memberId}`, {role: 'viewer'})).status === 200, 'demoted');
    ok((await call(BASE_C, deeToken, 'GET', '/keys')).status === 401, 'the demoted member’s session is refused');
    await u.page.getByRole('link', {name: 'Modes'}).click();
    await u.page.waitForSelector('form.signin >> text=Your session was ended');
    await u.context.close();
  });

  await step('(e) a viewer sees keys but never a value; the API refuses a value read with their session', async () => {
    const t = await person('vic', BASE_C);
    await oidcSignIn(t, 'vic@acme.example');
    ok(await signedIn(t, 'keys') === 'Signed in as Vic Vale · viewer', 'Vic is signed in as a viewer');
    ok(await t.page.isVisible(`tr[data-key="${keyId}"] >> text=…Zq42`), 'the key is listed, with its preview');
    ok(await t.page.isVisible('text=Read-only: your role (viewer) lacks the keys:write scope'), 'read-only, said why');
    ok(await t.page.locator('form.add').count() === 0, 'no add form');
    ok(await t.page.getByRole('button', {name: /reveal|show value|copy value/i}).count() === 0, 'nothing offers a value');
    await t.page.getByRole('button', {name: 'Details OpenAI Production'}).click();
    await t.page.waitForSelector('.detail h2');
    await t.page.waitForTimeout(300);
    ok(await t.page.locator('.detail form').count() === 0, 'no write forms in the details');
    await check(t, 'viewer-keys');
    const where = await t.page.evaluate((s) => ({
      dom: document.documentElement.outerHTML.includes(s),
      storage: [...Object.values(sessionStorage), ...Object.values(localStorage)].some((v) => v.includes(s)),
    }), SECRET);
    ok(!where.dom && !where.storage, `the value was found: ${JSON.stringify(where)}`);
    ok(await t.page.locator('nav [aria-disabled="true"]', {hasText: 'Members'}).count() === 1, 'Members is shown disabled');
    const token = await storedToken(t);
    const read = await call(BASE_C, token, 'GET', `/external/keys/${keyId}/value?env=dev`);
    ok(read.status === 403, `a value read with a viewer's session: ${read.status} ${JSON.stringify(read.body)}`);
    const list = await call(BASE_C, token, 'GET', `/keys/${keyId}`);
    ok(list.status === 200 && !JSON.stringify(list.body).includes(SECRET), `the metadata: ${list.status}`);
    await t.page.goto(`${BASE_C}/console/#/members`);
    await t.page.waitForSelector('text=Your role (viewer) lacks the members:read scope');
    await t.context.close();
  });

  await step('(e2) a member creates a token in the console from her session: it reads "created by" her, her session as hers; her identity too', async () => {
    const t = ana.tab;
    await t.page.bringToFront();
    await t.page.getByRole('link', {name: 'Tokens'}).click();
    await t.page.waitForSelector('main[data-rendered="tokens"]');
    const form = t.page.locator('form.add');
    if (!(await form.isVisible())) await t.page.locator('summary', {hasText: 'Create a token'}).click();
    await form.getByLabel('Name').fill('ana-ci');
    await form.getByLabel('keys:read').check();
    await form.getByLabel('OpenAI Production').check();
    await form.getByRole('button', {name: 'Create token'}).click();
    await t.page.waitForSelector('.once');
    anaCi = {token: await t.page.inputValue('.once input.secret')};
    const listed = (await call(BASE_C, TOKEN_C, 'GET', '/tokens?limit=100')).body.tokens;
    const made = listed.find((x) => x.name === 'ana-ci');
    const anchor = listed.find((x) => x.memberId === ana.memberId && !x.issuedBy);
    ok(made && anchor && made.issuedBy === anchor.tokenId && !made.memberId, `entered under Ana's anchor: ${JSON.stringify({made, anchor})}`);
    anaCi.tokenId = made.tokenId;
    ok((await call(BASE_C, anaCi.token, 'GET', `/keys/${keyId}`)).status === 200, 'the new token works');
    await t.page.getByRole('button', {name: 'Done, hide it'}).click();
    // Her view: the subtree under her (the anchor itself is out of a session's sight) headed by her row.
    const head = t.page.locator(`tr.person[data-person="${ana.memberId}"]`);
    ok(await head.count() === 1, 'her row heads the subtree');
    const headText = (await head.textContent()).replace(/\s+/g, ' ');
    ok(headText.includes('Ana Lima') && headText.includes('person') && headText.includes('you') && headText.includes('1 session · 1 token created'),
      `her row: ${headText}`);
    ok(await t.page.locator(`tr[data-token="${anchor.tokenId}"]`).count() === 0, 'the anchor is not shown as a token');
    const row = t.page.locator(`tr[data-token="${made.tokenId}"]`);
    ok((await row.locator('.by').textContent()) === 'created by Ana Lima', `the row: ${await row.textContent()}`);
    ok(await row.locator('.tree[data-depth="1"]').count() === 1, 'indented under her row');
    const mine = t.page.locator('table.tokens tbody tr', {has: t.page.locator('.badge.you')}).filter({hasNot: t.page.locator('.person-head')});
    ok(/^Ana Lima[’']s session$/.test(await mine.locator('.name').first().textContent()), `her session: ${await mine.textContent()}`);
    // The search finds what a person created by their name.
    await t.page.getByLabel('Search').fill('ana lima');
    ok(await t.page.locator('table.tokens tbody tr[data-token]').count() === 2, 'the search by her name: her session and her token');
    await t.page.getByLabel('Search').fill('');
    await fold(t);
    await check(t, 'signin-member-tokens');
    // An identity, created with her session through the API.
    const idn = await call(BASE_C, anaToken, 'POST', '/identities', {name: 'ana nightly', kind: 'aws', awsAccountId: '123456789012',
      awsRoleName: 'ana-nightly', scopes: ['keys:read'], tokenTtl: 900});
    ok(idn.status === 201 && idn.body.createdBy === anchor.tokenId, `the identity, created by her anchor: ${idn.status} ${JSON.stringify(idn.body)}`);
    anaIdentity = idn.body;
    await t.page.getByRole('link', {name: 'Identities'}).click();
    await t.page.waitForSelector('main[data-rendered="identities"]');
    const who = t.page.locator(`tr[data-identity="${anaIdentity.identityId}"] .who-made`);
    await t.page.waitForFunction((id) => {
      const el = document.querySelector(`tr[data-identity="${id}"] .who-made`);
      return el && el.textContent.includes('Ana Lima');
    }, anaIdentity.identityId);
    const whoText = (await who.textContent()).replace(/\s+/g, ' ');
    ok(whoText.startsWith('created by Ana Lima') && whoText.includes('you'), `the identity's creator: ${whoText}`);
    await check(t, 'signin-member-identities');
    // Removing someone else: her session cannot see what they made, so the confirmation says it generically.
    await t.page.getByRole('link', {name: 'Members'}).click();
    await t.page.waitForSelector('main[data-rendered="members"]');
    await t.page.getByRole('button', {name: 'Remove Vic Vale'}).click();
    await t.page.locator('dialog.confirm').waitFor();
    const said = (await t.page.textContent('dialog.confirm')).replace(/\s+/g, ' ');
    ok(said.includes('every token and identity they created is revoked') && said.includes('They are not listed here: you see only what you created yourself.'),
      `the confirmation, from a session: ${said}`);
    await check(t, 'signin-member-remove-generic');
    await t.page.locator('dialog.confirm').getByRole('button', {name: 'Cancel'}).click();
    ok((await call(BASE_C, TOKEN_C, 'GET', '/members?limit=100')).body.members.some((m) => m.name === 'Vic Vale'), 'cancel kept Vic');
  });

  await step('(f) sign-out revokes the session: the old token then gets 401', async () => {
    const t = ana.tab;
    await t.page.bringToFront();
    ok((await call(BASE_C, anaToken, 'GET', '/keys')).status === 200, 'the session works before');
    const revoke = t.page.waitForRequest((r) => r.method() === 'DELETE' && r.url() === `${BASE_C}/tokens/self`);
    await t.page.getByRole('button', {name: 'Sign out'}).click();
    await revoke;
    await t.page.waitForSelector('form.signin >> text=Signed out. The session was ended on the server.');
    ok(await t.page.evaluate(() => sessionStorage.length + localStorage.length) === 0, 'storage is empty');
    ok((await call(BASE_C, anaToken, 'GET', '/keys')).status === 401, 'the old token is refused');
    await check(t, 'signed-out-session');
    await t.context.close();
  });

  await step('(g) GitHub: invited by login, signs in; a later holder of that login is refused, the renamed account still signs in', async () => {
    const mona = await invite(BASE_C, TOKEN_C, {provider: 'github', login: 'octocat', role: 'developer'});
    const t = await person('mona', BASE_C);
    await githubSignIn(t, 'octocat', 'signin-github-standin');
    const header = await signedIn(t, 'keys');
    ok(header === 'Signed in as Mona Lisa Octocat · developer' || header === 'Signed in as octocat · developer', `the header: ${header}`);
    figures['GitHub sign-in: the name shown'] = header;
    await check(t, 'signin-github-keys');
    const bound = await member(BASE_C, TOKEN_C, mona.memberId);
    ok(String(bound.subject) === '583231', `bound to the GitHub id: ${JSON.stringify(bound)}`);
    await t.context.close();
    // GitHub: the account is renamed; its old login goes to someone else.
    gh.users.get(583231).login = 'mona-renamed';
    gh.users.set(990001, {id: 990001, login: 'octocat', name: 'Not Mona', email: 'newcomer@github.example'});
    const n = await person('newcomer', BASE_C);
    await githubSignIn(n, 'octocat');
    ok(n.callbacks.at(-1) && n.callbacks.at(-1).status === 403, `the newcomer is refused: ${JSON.stringify(n.callbacks)}`);
    await check(n, 'signin-github-refused-newcomer');
    await n.context.close();
    const again = await person('mona again', BASE_C);
    await githubSignIn(again, 'mona-renamed');
    ok((await signedIn(again, 'keys')).endsWith(' · developer'), 'the renamed account signs in, found by its id');
    await again.context.close();
  });
  await step('(h) the root’s console: people head their subtrees, the audit log filters by person, a demotion and a removal say what ends', async () => {
    // A second owner, so that Ana is not the last one (the last owner stays).
    await invite(BASE_C, TOKEN_C, {provider: 'oidc', email: 'fay@acme.example', role: 'owner', name: 'Fay Fox'});
    const t = await person('root', BASE_C);
    await t.page.goto(`${BASE_C}/console/#/tokens`);
    await t.page.getByLabel('Token').fill(TOKEN_C);
    await t.page.getByRole('button', {name: 'Sign in'}).click();
    await t.page.waitForSelector('main[data-rendered="tokens"]');
    const listed = (await call(BASE_C, TOKEN_C, 'GET', '/tokens?limit=100')).body.tokens;
    for (const a of listed.filter((x) => x.memberId && !x.issuedBy)) {
      ok(await t.page.locator(`tr[data-token="${a.tokenId}"]`).count() === 0, `the anchor ${a.name} is no token row`);
    }
    const head = t.page.locator(`tr.person[data-person="${ana.memberId}"]`);
    ok((await head.textContent()).includes('Ana Lima') && await head.locator('.badge.you').count() === 0, 'Ana’s row, not the root’s');
    ok((await t.page.locator(`tr[data-token="${anaCi.tokenId}"] .by`).textContent()) === 'created by Ana Lima', 'her token, created by her');
    const sessions = t.page.locator('tr.session', {hasText: /Ana Lima[’']s session/});
    ok(await sessions.count() >= 1 && await sessions.locator('.badge.revoked').count() === await sessions.count(), 'her session, ended by her sign-out');
    const bo = t.page.locator('tr.person.ended', {hasText: 'Bo Berg'});
    ok(await bo.count() === 1 && (await bo.textContent()).includes('ended when they were removed'), 'Bo, removed: his row says it ended');
    const dee = t.page.locator('tr.person.ended', {hasText: 'Dee Dahl'});
    ok(await dee.count() === 1 && (await dee.textContent()).includes('ended when their role was lowered'), 'Dee, demoted: hers says why');
    await fold(t);
    await check(t, 'signin-root-tokens');
    await t.page.getByRole('link', {name: 'Identities'}).click();
    await t.page.waitForFunction((id) => {
      const el = document.querySelector(`tr[data-identity="${id}"] .who-made`);
      return el && el.textContent.includes('created by Ana Lima');
    }, anaIdentity.identityId);

    // The audit log: each actor by name and kind; the person filter.
    await t.page.getByRole('link', {name: 'Audit'}).click();
    await t.page.waitForSelector('main[data-rendered="audit"]');
    await t.page.getByLabel('Per page').selectOption('100');
    await t.page.waitForSelector('text=Page 1: ');
    const events = (await call(BASE_C, TOKEN_C, 'GET', '/audit?limit=100')).body.events;
    const hers = events.filter((e) => e.actor && e.actor.memberId === ana.memberId);
    ok(hers.length >= 4 && ['auth.signin', 'token.create', 'identity.create', 'token.revoke'].every((a) => hers.some((e) => e.action === a)),
      `her events: ${JSON.stringify(hers.map((e) => e.action))}`);
    const options = await t.page.getByLabel('Person').locator('option').allTextContents();
    ok(options[0] === 'anyone' && options.includes('Ana Lima') && options.includes('Bo Berg'), `the people seen: ${JSON.stringify(options)}`);
    await t.page.getByLabel('Person').selectOption({label: 'Ana Lima'});
    await t.page.waitForSelector(`text=Page 1: ${hers.length} of ${events.length} events shown`);
    const actors = await t.page.locator('table.audit tbody td.actor').evaluateAll((cells) => cells.map((c) => [c.querySelector('.name')?.textContent, c.querySelector('.badge')?.textContent]));
    ok(actors.length === hers.length && actors.every(([name, kind]) => name === 'Ana Lima' && kind === 'person'), `the rows: ${JSON.stringify(actors)}`);
    const requests = await t.page.locator('table.audit tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.request));
    ok(JSON.stringify(requests) === JSON.stringify(hers.map((e) => e.requestId)), 'only her events, newest first');
    await check(t, 'signin-audit-person');
    await t.page.getByLabel('Person').selectOption('');
    const rootRow = t.page.locator('table.audit tbody tr', {has: t.page.locator('td.actor .badge', {hasText: /^token$/})});
    ok(await rootRow.count() > 0, 'the root’s requests are a token’s');

    // Members: lowering Mona’s role asks first, saying her sessions end.
    await t.page.getByRole('link', {name: 'Members'}).click();
    await t.page.waitForSelector('main[data-rendered="members"]');
    const mona = (await call(BASE_C, TOKEN_C, 'GET', '/members?limit=100')).body.members.find((m) => m.provider === 'github');
    const role = t.page.locator(`tr[data-member="${mona.memberId}"] select.role-select`);
    await role.selectOption('viewer');
    const dialog = t.page.locator('dialog.confirm');
    await dialog.waitFor();
    let text = (await dialog.textContent()).replace(/\s+/g, ' ');
    ok(text.includes(`Lower ${mona.name} to viewer?`) && text.includes('sessions end at once') && text.includes('Revoked at once: their 2 live sessions.'),
      `the demotion asks: ${text}`);
    await check(t, 'signin-member-demote-confirm');
    await dialog.getByRole('button', {name: 'Cancel'}).click();
    ok(await role.inputValue() === 'developer' && (await member(BASE_C, TOKEN_C, mona.memberId)).role === 'developer', 'cancel kept the role');
    await role.selectOption('viewer');
    await t.page.locator('dialog.confirm').getByRole('button', {name: 'Lower role'}).click();
    await t.page.waitForSelector(`text=${mona.name} is now viewer.`);
    ok((await member(BASE_C, TOKEN_C, mona.memberId)).role === 'viewer', 'demoted');

    // Removing Ana lists what she created; then it is revoked.
    ok((await call(BASE_C, anaCi.token, 'GET', `/keys/${keyId}`)).status === 200, 'her token works before');
    await t.page.getByRole('button', {name: 'Remove Ana Lima'}).click();
    await t.page.locator('dialog.confirm').waitFor();
    const made = await t.page.locator('dialog.confirm ul.made li').allTextContents();
    text = (await t.page.textContent('dialog.confirm')).replace(/\s+/g, ' ');
    ok(made.some((x) => x.includes('ana-ci') && x.includes('token')) && made.some((x) => x.includes('ana nightly') && x.includes('identity')) && made.length === 2,
      `the confirmation lists what she made: ${JSON.stringify(made)}`);
    ok(text.includes('Revoked at once: what they created (2). The applications using them are refused from the next request'), `the confirmation: ${text}`);
    await check(t, 'signin-member-remove-confirm');
    await t.page.locator('dialog.confirm').getByRole('button', {name: 'Remove member'}).click();
    await t.page.waitForSelector('text=Ana Lima removed.');
    ok((await call(BASE_C, anaCi.token, 'GET', `/keys/${keyId}`)).status === 401, 'her token is refused');
    ok((await call(BASE_C, TOKEN_C, 'GET', '/tokens?limit=100')).body.tokens.find((x) => x.tokenId === anaCi.tokenId).revokedAt, 'and listed revoked');
    await t.page.getByRole('link', {name: 'Tokens'}).click();
    await t.page.waitForSelector('main[data-rendered="tokens"]');
    ok(await t.page.locator(`tr.person.ended[data-person="${ana.memberId}"]`).count() === 1, 'her row says it ended');
    ok(await t.page.locator(`tr[data-token="${anaCi.tokenId}"] .badge.revoked`).count() === 1, 'her token shows revoked');
    await fold(t);
    await check(t, 'signin-root-tokens-after-removal');
    await t.context.close();
  });
} finally {
  await browser.close();
  for (const s of [oidcServer, githubServer]) {
    s.close();
    s.closeAllConnections();
  }
  console.log('\nFigures (measured, not asserted):');
  for (const [k, v] of Object.entries(figures)) console.log(`  ${k}: ${v}`);
  fs.writeFileSync(path.join(OUT_DIR, 'signin-figures.json'), JSON.stringify(figures, null, 2));
  console.log(`\n${results.filter((r) => r[1] === 'ok').length}/${results.length} sign-in steps passed; screenshots in ${OUT_DIR}`);
}
