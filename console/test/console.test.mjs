// Browser tests of the console against two `ibyok dev` servers (scripts/console-test
// starts them): Debian's chromium driven by playwright-core. Every page is
// checked for CSP violations, console errors, requests to other origins and
// serious or critical axe-core violations, and screenshotted.
//
// Environment: CHROMIUM, OUT_DIR, BASE_A/TOKEN_A (no guardrails; a quota of
// 100,000 reads a month), BASE_B/TOKEN_B (started with guardrails; no quota).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import {createRequire} from 'node:module';
import {chromium} from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const {CHROMIUM, OUT_DIR, BASE_A, TOKEN_A, BASE_B, TOKEN_B} = process.env;
const BENCH_TOKENS = Number(process.env.BENCH_TOKENS || 5000);
const APP_DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../app');
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
      console.log(`tab ${i} at ${t.page.url()}: ${t.problems.join('\n') || 'no problems logged'}`);
      await t.page.screenshot({path: path.join(OUT_DIR, `FAILED-tab${i}.png`)}).catch(() => {});
    }
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
  return {status: res.status, body: text ? JSON.parse(text) : null};
}
async function issue(base, token, body) {
  const r = await call(base, token, 'POST', '/tokens', body);
  ok(r.status === 201, `POST /tokens ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

// An OpenID issuer on a loopback port (discovery and a JWKS; RS256), so that
// a workload can exchange a JWT through an identity made in the console.
const oidcKey = crypto.generateKeyPairSync('rsa', {modulusLength: 2048});
const oidcJwk = {...oidcKey.publicKey.export({format: 'jwk'}), kid: 'console-test', use: 'sig', alg: 'RS256'};
const oidcIssuer = http.createServer((req, res) => {
  const body = req.url === '/.well-known/openid-configuration' ? {issuer: ISSUER, jwks_uri: `${ISSUER}/jwks`}
    : req.url === '/jwks' ? {keys: [oidcJwk]} : null;
  // No keep-alive: the server's pooled connection would keep this process
  // alive after the test.
  res.writeHead(body ? 200 : 404, {'content-type': 'application/json', connection: 'close'});
  res.end(JSON.stringify(body || {}));
});
await new Promise((resolve) => oidcIssuer.listen(0, '127.0.0.1', resolve));
const ISSUER = `http://127.0.0.1:${oidcIssuer.address().port}`;
/** A JWT of that issuer with these claims (and iss, iat, exp). */
function oidcJwt(claims) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({alg: 'RS256', typ: 'JWT', kid: 'console-test'})}.${enc({iss: ISSUER, iat: now, exp: now + 300, ...claims})}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), oidcKey.privateKey).toString('base64url')}`;
}

// ------------------------------------------------------------------ size
{
  let raw = 0;
  let gz = 0;
  const walk = (d) => {
    for (const f of fs.readdirSync(d, {withFileTypes: true})) {
      const p = path.join(d, f.name);
      if (f.isDirectory()) walk(p);
      else if (/\.(js|css)$/.test(f.name)) {
        const b = fs.readFileSync(p);
        raw += b.length;
        gz += zlib.gzipSync(b, {level: 9}).length;
      }
    }
  };
  walk(APP_DIR);
  figures['console JS+CSS, raw / gzip'] = `${(raw / 1024).toFixed(1)} kB / ${(gz / 1024).toFixed(1)} kB`;
  ok(gz <= 150 * 1024, `the console is ${gz} bytes compressed, over 150 kB`);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibyok-console-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
  viewport: {width: 1280, height: 860},
});
await context.grantPermissions(['clipboard-read', 'clipboard-write'], {origin: BASE_A});

/** A tab with its own session and its problem log. */
async function tab(base) {
  const page = await context.newPage();
  const problems = [];
  const expected4xx = [];
  const origin = new URL(base).origin;
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium logs every 4xx answer; the console provokes some on purpose
    // (scope probes, routes this server lacks, refused tokens).
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) expected4xx.push(m.text());
    else problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.protocol !== 'blob:' && u.origin !== origin) problems.push(`request to another origin: ${r.url()}`);
  });
  const t = {page, problems, expected4xx, base};
  tabs.push(t);
  return t;
}

/** The checks every page gets, and its screenshot. */
async function check(t, shot, focus = null) {
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
  if (focus) await page.locator(focus).scrollIntoViewIfNeeded();
  else await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({path: path.join(OUT_DIR, `${shot}.png`), fullPage: false});
}

async function signInWith(t, token, page = 'keys') {
  await t.page.goto(`${t.base}/console/`);
  await t.page.getByLabel('Token').fill(token);
  await t.page.getByRole('button', {name: 'Sign in'}).click();
  await t.page.waitForSelector(`main[data-rendered="${page}"]`);
}

/** Loads a page afresh (a reload when it is the one shown) and waits for its render. */
async function rendered(t, page) {
  const target = `${t.base}/console/#/${page}`;
  await t.page.evaluate(() => document.getElementById('main') && delete document.getElementById('main').dataset.rendered);
  if (t.page.url() === target) await t.page.reload();
  else await t.page.goto(target);
  await t.page.waitForSelector(`main[data-rendered="${page}"]`);
}

/** Creates a keys:read token through the tokens page's form (`more` fills the rest); waits for it to be shown. */
async function createKeysReader(name, more) {
  const form = root.page.locator('form.add');
  if (!(await form.isVisible())) await root.page.locator('summary', {hasText: 'Create a token'}).click();
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('keys:read').check();
  await more(form);
  await form.getByRole('button', {name: 'Create token'}).click();
  await root.page.waitForSelector('.once');
}

const SECRET = `sk-console-secret-${Math.random().toString(36).slice(2)}-XyZ9`;
const root = await tab(BASE_A);
let keyId;
let reader;
let expiring;

try {
  await step('the server adds the headers; / stays 404; the console URL carries no token', async () => {
    const r = await fetch(`${BASE_A}/console/`);
    const csp = r.headers.get('content-security-policy');
    ok(r.status === 200 && /script-src 'self'/.test(csp) && /frame-ancestors 'none'/.test(csp) && !/unsafe/.test(csp), `CSP ${csp}`);
    ok(r.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
    ok(r.headers.get('referrer-policy') === 'no-referrer', 'no-referrer');
    ok((await fetch(`${BASE_A}/`)).status === 404, 'GET / is 404');
  });

  await step('sign-in refuses a bad checksum in the page, before any request', async () => {
    await root.page.goto(`${BASE_A}/console/`);
    await root.page.waitForSelector('form.signin');
    await check(root, 'signin');
    let apiCalls = 0;
    const count = (r) => { if (!r.url().includes('/console/')) apiCalls += 1; };
    root.page.on('request', count);
    const typo = TOKEN_A.slice(0, 20) + (TOKEN_A[20] === 'a' ? 'b' : 'a') + TOKEN_A.slice(21);
    await root.page.getByLabel('Token').fill(typo);
    await root.page.getByRole('button', {name: 'Sign in'}).click();
    await root.page.waitForSelector('text=The checksum does not match');
    await root.page.getByLabel('Token').fill('ibyok_short');
    await root.page.getByRole('button', {name: 'Sign in'}).click();
    await root.page.waitForSelector('text=A token has 44 characters');
    root.page.off('request', count);
    ok(apiCalls === 0, `${apiCalls} requests before the checksum was right`);
    await check(root, 'signin-refused');
  });

  await step('sign in with the root token: the keys page', async () => {
    await root.page.getByLabel('Token').fill(TOKEN_A);
    await root.page.getByRole('button', {name: 'Sign in'}).click();
    await root.page.waitForSelector('main[data-rendered="keys"]');
    ok(!root.page.url().includes(TOKEN_A), 'the token is in the URL');
    ok(await root.page.evaluate(() => localStorage.length) === 0, 'localStorage is empty');
    ok((await context.cookies()).length === 0, 'no cookies');
    await check(root, 'keys-empty');
  });

  await step('a 60-second token signs in (it expires while the other flows run)', async () => {
    expiring = await issue(BASE_A, TOKEN_A, {name: 'one-minute', scopes: ['keys:read', 'usage:read'], expiresIn: 60});
    expiring.tab = await tab(BASE_A);
    await signInWith(expiring.tab, expiring.token);
    ok(await expiring.tab.page.isVisible('.expiry.warn'), 'the expiry warning (1 minute left)');
    await root.page.bringToFront(); // this tab waits in the background; its timers still run
  });

  await step('add a key: its value is nowhere in the DOM, storage or cookies', async () => {
    const form = root.page.locator('form.add');
    ok(await form.isVisible(), 'the add form is open while there is no key');
    await form.getByLabel('Name').fill('OpenAI Production');
    await form.getByLabel('Type').fill('openai');
    await form.getByLabel('Value').fill(SECRET);
    await form.getByRole('button', {name: 'Add key'}).click();
    await root.page.waitForSelector('tr[data-key] >> text=OpenAI Production');
    keyId = await root.page.getAttribute('tr[data-key]', 'data-key');
    const where = await root.page.evaluate((s) => {
      const inputs = [...document.querySelectorAll('input, textarea, select')].map((i) => i.value);
      const storage = [...Object.values(sessionStorage), ...Object.values(localStorage)];
      return {
        dom: document.documentElement.outerHTML.includes(s),
        text: document.body.innerText.includes(s),
        inputs: inputs.some((v) => v.includes(s)),
        storage: storage.some((v) => v.includes(s)),
        cookie: document.cookie.includes(s),
      };
    }, SECRET);
    ok(!Object.values(where).some(Boolean), `the value was found: ${JSON.stringify(where)}`);
    ok(!(await context.cookies()).some((c) => c.value.includes(SECRET)), 'the value is in a cookie');
    ok(await root.page.isVisible(`text=…${SECRET.slice(-4)}`), 'the preview is shown');
    // Two more keys, through the API, for the lists.
    await call(BASE_A, TOKEN_A, 'POST', '/keys', {name: 'Anthropic staging', llmType: 'anthropic', value: 'sk-ant-console-000000000'});
    await call(BASE_A, TOKEN_A, 'POST', '/keys', {name: 'Groq', llmType: 'groq', value: 'gsk-console-111111111', modeOverrides: {production: 'live'}});
  });

  await step('figure: time to the first render of the keys page', async () => {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await rendered(root, 'keys');
      times.push(Date.now() - t0);
    }
    times.sort((a, b) => a - b);
    figures['keys page, navigation to first render (median of 5; 3 keys)'] = `${times[2]} ms`;
    await check(root, 'keys');
  });

  await step('rename, rotate and set an override per environment', async () => {
    await root.page.getByRole('button', {name: 'Manage OpenAI Production'}).click();
    await root.page.waitForSelector('.versions >> text=Rotate');
    await check(root, 'key-detail', '.detail .versions');
    ok(await root.page.locator('form.add').count() === 1 && !(await root.page.locator('form.add').isVisible()), 'the add form is folded once keys exist');
    await root.page.getByLabel('New name').fill('OpenAI Prod');
    await root.page.getByRole('button', {name: 'Rename', exact: true}).click();
    await root.page.waitForSelector('tr[data-key] >> text=OpenAI Prod');
    await root.page.getByRole('button', {name: 'Manage OpenAI Prod'}).click();
    await root.page.waitForSelector('.versions >> text=Rotate');
    await root.page.locator('.detail select[name="development"]').selectOption('live');
    await root.page.locator('.detail select[name="staging"]').selectOption('mock');
    await root.page.getByRole('button', {name: 'Save overrides'}).click();
    await root.page.waitForSelector(`tr[data-key="${keyId}"] >> text=dev: live`);
    const k = await call(BASE_A, TOKEN_A, 'GET', `/keys/${keyId}`);
    ok(k.body.modeOverrides.development === 'live' && k.body.modeOverrides.staging === 'mock', JSON.stringify(k.body));
    await root.page.getByRole('button', {name: 'Manage OpenAI Prod'}).click();
    await root.page.waitForSelector('.versions >> text=Rotate');
    const rotated = `${SECRET}-rotated-Qq77`;
    await root.page.getByLabel('New value').fill(rotated);
    await root.page.getByRole('button', {name: 'Rotate', exact: true}).click();
    await root.page.waitForSelector(`tr[data-key="${keyId}"] >> text=…Qq77`);
    ok(!(await root.page.content()).includes(rotated), 'the rotated value is in the DOM');
  });

  await step('rotate to a pending version and promote it (the version panel)', async () => {
    const pending = `${SECRET}-pending-Pp55`;
    await rendered(root, 'keys');
    await root.page.getByRole('button', {name: 'Manage OpenAI Prod'}).click();
    await root.page.waitForSelector('.versions table');
    const detail = root.page.locator('.detail');
    await detail.getByLabel('New value').fill(pending);
    await detail.getByLabel('New version becomes').selectOption('pending');
    ok(!(await detail.getByLabel('Keep the previous version readable for').isVisible()), 'no window is asked for a pending version');
    await detail.getByRole('button', {name: 'Rotate', exact: true}).click();
    await root.page.waitForSelector('.status >> text=Stored a pending version');
    await root.page.waitForSelector('.versions tr:has(.badge.pending) >> text=…Pp55');
    ok(await root.page.locator(`tr[data-key="${keyId}"] >> text=…Qq77`).count() === 1, 'the current version stays …Qq77');
    const read = await call(BASE_A, TOKEN_A, 'GET', `/external/keys/${keyId}/value?env=dev&version=pending`);
    ok(read.status === 200 && read.body.value === pending, `the pending version reads: ${read.status}`);
    ok(!(await root.page.content()).includes(pending), 'the pending value is in the page');
    await check(root, 'key-versions', '.detail .versions');
    await detail.getByLabel('Keep the current version readable for').selectOption('3600');
    await detail.getByRole('button', {name: 'Promote'}).click();
    await root.page.waitForSelector('.status >> text=Promoted version 3');
    await root.page.waitForSelector(`tr[data-key="${keyId}"] >> text=…Pp55`);
    const rows = await root.page.locator('.versions tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    ok(rows[0][0] === '3' && rows[0][1] === 'current' && rows[0][2] === '…Pp55', `version 3 current: ${JSON.stringify(rows)}`);
    ok(rows[1][0] === '2' && rows[1][1] === 'previous' && /^in (60 minutes|1 hour)/.test(rows[1][4]), `version 2 previous for an hour: ${JSON.stringify(rows)}`);
    ok(await root.page.locator('.versions h4', {hasText: 'Promote the pending version'}).count() === 0, 'nothing left to promote');
    const prev = await call(BASE_A, TOKEN_A, 'GET', `/external/keys/${keyId}/value?env=dev&version=previous`);
    ok(prev.status === 200 && prev.body.version === 2, `the previous version reads for its window: ${prev.status}`);
  });

  await step('delete asks first, then deletes', async () => {
    const throwaway = (await call(BASE_A, TOKEN_A, 'POST', '/keys', {name: 'Throwaway', llmType: 'openai', value: 'sk-throwaway-0000000'})).body;
    await rendered(root, 'keys');
    await root.page.getByRole('button', {name: 'Manage Throwaway'}).click();
    await root.page.getByRole('button', {name: 'Delete key…'}).click();
    await root.page.waitForSelector('dialog[open]');
    await check(root, 'key-delete-confirm');
    await root.page.locator('dialog').getByRole('button', {name: 'Cancel'}).click();
    ok((await call(BASE_A, TOKEN_A, 'GET', `/keys/${throwaway.keyId}`)).status === 200, 'cancel kept the key');
    await root.page.getByRole('button', {name: 'Delete key…'}).click();
    await root.page.locator('dialog').getByRole('button', {name: 'Delete key'}).click();
    await root.page.waitForSelector('text=Deleted Throwaway');
    ok((await call(BASE_A, TOKEN_A, 'GET', `/keys/${throwaway.keyId}`)).status === 404, 'the key is gone');
  });

  await step('create a token with scopes limited to the caller’s, and copy it', async () => {
    await rendered(root, 'tokens');
    await check(root, 'tokens');
    await createKeysReader('ci-reader', (form) => form.getByLabel('Expires in').selectOption('86400'));
    await check(root, 'token-created');
    reader = await root.page.inputValue('.once input.secret');
    ok(/^ibyok_[0-9A-Za-z]{38}$/.test(reader), `shown token ${reader}`);
    await root.page.locator('.once').getByRole('button', {name: 'Copy'}).click();
    await root.page.waitForSelector('.once >> text=Copied.');
    const clip = await root.page.evaluate(() => navigator.clipboard.readText());
    ok(clip === reader, 'the clipboard holds the token');
    ok((await call(BASE_A, reader, 'GET', '/keys')).status === 200, 'the copied token works');
    ok((await call(BASE_A, reader, 'GET', '/tokens')).status === 403, 'with keys:read only');
    await root.page.getByRole('button', {name: 'Done, hide it'}).click();
    ok(!(await root.page.content()).includes(reader), 'the token is gone from the page once hidden');
  });

  await step('create a token with a rate limit: shown in the token tree', async () => {
    await createKeysReader('limited-reader', (form) => form.getByLabel('Rate limit (requests/minute)').fill('120'));
    const token = await root.page.inputValue('.once input.secret');
    await root.page.getByRole('button', {name: 'Done, hide it'}).click();
    const row = root.page.locator('table.tokens tbody tr', {hasText: 'limited-reader'});
    ok((await row.locator('td', {hasText: '/min'}).textContent()) === '120/min', `the tree shows the limit: ${await row.textContent()}`);
    const mine = (await call(BASE_A, TOKEN_A, 'GET', '/tokens?limit=100')).body.tokens.find((t) => t.name === 'limited-reader');
    ok(mine.rateLimit === 120, `the server holds ${mine.rateLimit}`);
    const res = await fetch(`${BASE_A}/keys`, {headers: {Authorization: `Bearer ${token}`}});
    ok(res.status === 200 && res.headers.get('ratelimit-limit') === '120', `RateLimit-Limit ${res.headers.get('ratelimit-limit')}`);
    ok(await root.page.locator('table.tokens tbody tr', {hasText: 'dev root'}).locator('td', {hasText: '—'}).count() >= 1, 'an unlimited token shows —');
    await check(root, 'tokens-rate-limit', 'table.tokens');
  });

  await step('a token over its rate limit sees the 429 and when to try again', async () => {
    // One request a minute: sign-in's GET /tokens passes, the tokens page's
    // own list is refused. A UTC minute turning in between lets both pass:
    // then once more with a fresh token.
    for (let attempt = 1; ; attempt++) {
      const tight = await issue(BASE_A, TOKEN_A, {name: `one-a-minute-${attempt}`, scopes: ['tokens:read'], rateLimit: 1});
      const t = await tab(BASE_A);
      await signInWith(t, tight.token, 'tokens');
      const banner = await t.page.locator('.banner:not([hidden])').count();
      if (!banner && attempt < 3) {
        await t.page.close();
        continue;
      }
      const text = await t.page.textContent('.banner');
      ok(/^Error 429: .+[.!?] Try again in \d+ seconds?\./.test(text), `the banner: ${text}`);
      await check(t, 'rate-limited');
      await t.page.close();
      await root.page.bringToFront();
      break;
    }
  });

  await step('a keys:read token sees a read-only console, and its expiry warning', async () => {
    const t = await tab(BASE_A);
    await signInWith(t, reader);
    ok(await t.page.isVisible('text=Read-only: this token lacks the keys:write scope'), 'the read-only notice');
    ok(await t.page.locator('form.add').count() === 0, 'no add form');
    ok(await t.page.locator('nav [aria-disabled="true"]').count() === 6, 'six sections disabled');
    ok(await t.page.isVisible('.expiry.warn'), 'the expiry warning (1 day left)');
    await check(t, 'keys-readonly');
    await t.page.getByRole('button', {name: 'Details OpenAI Prod'}).click();
    await t.page.waitForSelector('.versions');
    ok(await t.page.locator('.detail form').count() === 0, 'no write forms in the details');
    await t.page.goto(`${BASE_A}/console/#/tokens`);
    await t.page.waitForSelector('text=This token lacks the tokens:read scope');
    await check(t, 'tokens-forbidden');
    await t.page.goto(`${BASE_A}/console/#/identities`);
    await t.page.waitForSelector('text=This token lacks the tokens:read scope');
    ok(await t.page.locator('table.identities').count() === 0, 'no identities without tokens:read');
    figures['expected 4xx logged by Chromium for the read-only token (scope probes)'] = String(t.expected4xx.length);
    await t.page.close();
    await root.page.bringToFront(); // a background tab's animation frames are throttled
  });

  await step('revoke with cascade: the confirmation counts the descendants', async () => {
    const all = ['keys:read', 'tokens:read', 'tokens:write'];
    const parent = await issue(BASE_A, TOKEN_A, {name: 'team-parent', scopes: all});
    const child = await issue(BASE_A, parent.token, {name: 'team-child', scopes: all});
    const grandchild = await issue(BASE_A, child.token, {name: 'team-grandchild', scopes: ['keys:read']});
    await rendered(root, 'tokens');
    ok(await root.page.locator(`tr[data-token="${grandchild.tokenId}"] .tree[data-depth="3"]`).count() === 1, 'the grandchild is indented under its issuer');
    await root.page.getByRole('button', {name: 'Revoke team-parent'}).click();
    await root.page.waitForSelector('dialog[open]');
    const text = await root.page.textContent('dialog');
    ok(text.includes('the 2 live tokens issued from it'), `dialog says: ${text}`);
    await check(root, 'token-revoke-confirm');
    await root.page.locator('dialog').getByRole('button', {name: 'Revoke'}).click();
    await root.page.waitForSelector('text=Revoked team-parent and 2 descendants');
    for (const t of [parent, child, grandchild]) {
      ok((await call(BASE_A, t.token, 'GET', '/keys')).status === 401, `${t.name} is refused`);
      ok(await root.page.locator(`tr[data-token="${t.tokenId}"] .badge.revoked`).count() === 1, `${t.name} shows revoked`);
    }
    await root.page.getByLabel('Show').selectOption('revoked');
    ok(await root.page.locator('tbody tr').count() === 3, 'the revoked filter shows the three');
    await check(root, 'tokens-revoked');
  });

  await step('identities: create a GitHub Actions identity from owner, repository and environment', async () => {
    await rendered(root, 'identities');
    await check(root, 'identities-empty');
    const form = root.page.locator('form.identity');
    ok(await form.isVisible(), 'the create form is open while there is no identity');
    await form.getByLabel('Name', {exact: true}).fill('deploy from main');
    await form.getByLabel('Owner').fill('acme');
    await form.getByLabel('Repository', {exact: true}).fill('app');
    await form.getByLabel('Jobs that run on a branch').check();
    ok(await form.locator('.preview code').textContent() === 'repo:acme/app:ref:refs/heads/main', 'a branch builds a ref subject');
    await form.getByLabel('Jobs that deploy to an environment').check();
    ok(await form.getByLabel('Environment', {exact: true}).inputValue() === 'production', 'the environment defaults to production');
    ok(await form.locator('.preview code').textContent() === 'repo:acme/app:environment:production', 'the subject preview');
    await form.getByLabel('Repository ID').fill('81234567');
    await form.getByLabel('Audience').fill('ibyok:acme-console');
    await form.getByLabel('OpenAI Prod').check();
    await form.getByLabel('Each token lives').selectOption('1800');
    await check(root, 'identity-form', 'form.identity');
    await form.getByRole('button', {name: 'Create identity'}).click();
    await root.page.waitForSelector('.identity-created');
    const made = (await call(BASE_A, TOKEN_A, 'GET', '/identities')).body.identities.find((i) => i.name === 'deploy from main');
    ok(made && made.kind === 'oidc' && made.issuer === 'https://token.actions.githubusercontent.com' && made.audience === 'ibyok:acme-console' &&
      made.subject === 'repo:acme/app:environment:production' && made.subjectMatch === 'exact' &&
      JSON.stringify(made.boundClaims) === JSON.stringify({repository_id: ['81234567']}) &&
      JSON.stringify(made.scopes) === '["keys:read"]' && JSON.stringify(made.keyIds) === JSON.stringify([keyId]) && made.tokenTtl === 1800,
    `the server holds ${JSON.stringify(made)}`);
    const snippet = await root.page.textContent('.identity-created pre');
    ok(snippet.includes(`identity: ${made.identityId}`) && snippet.includes('audience: ibyok:acme-console') && snippet.includes('id-token: write') &&
      snippet.includes('environment: production') && snippet.includes(`OPENAI_API_KEY=${keyId}`), `the workflow snippet: ${snippet}`);
    await check(root, 'identity-created');
    const row = root.page.locator(`tr[data-identity="${made.identityId}"]`);
    const text = await row.textContent();
    ok(text.includes('GitHub Actions') && text.includes('repo:acme/app:environment:production') && text.includes('repository_id = 81234567') &&
      text.includes('OpenAI Prod') && text.includes('30 min') && text.includes('dev root'), `the row: ${text}`);
    await root.page.getByRole('button', {name: 'Done'}).click();
  });

  await step('identities: an AWS role, any OIDC issuer (a pattern and bound claims), the server’s 400 shown', async () => {
    const form = root.page.locator('form.identity');
    await root.page.locator('summary', {hasText: 'Create an identity'}).click();
    await form.getByLabel('AWS IAM role').check();
    await form.getByLabel('Name', {exact: true}).fill('nightly batch (Lambda)');
    await form.getByLabel('AWS account ID').fill('123456789012');
    await form.getByLabel('Role name').fill('ibyok batch!');
    await form.getByRole('button', {name: 'Create identity'}).click();
    await root.page.waitForSelector('.banner >> text=must be an IAM role name');
    ok((await root.page.textContent('.banner')).startsWith('Error 400: '), 'the server’s 400 as it is');
    await form.getByLabel('Role name').fill('ibyok-batch');
    await form.getByLabel('Each token lives').selectOption('3600');
    await form.getByRole('button', {name: 'Create identity'}).click();
    await root.page.waitForSelector('.identity-created >> text=--aws');
    const aws = (await call(BASE_A, TOKEN_A, 'GET', '/identities')).body.identities.find((i) => i.kind === 'aws');
    ok(aws && aws.awsAccountId === '123456789012' && aws.awsRoleName === 'ibyok-batch' && aws.tokenTtl === 3600 && aws.keyIds === null,
      `the server holds ${JSON.stringify(aws)}`);
    const awsRow = await root.page.locator(`tr[data-identity="${aws.identityId}"]`).textContent();
    ok(awsRow.includes('AWS IAM') && awsRow.includes('123456789012') && awsRow.includes('ibyok-batch') && awsRow.includes('all keys'), `the row: ${awsRow}`);
    await root.page.getByRole('button', {name: 'Done'}).click();
    await root.page.locator('summary', {hasText: 'Create an identity'}).click();
    await form.getByLabel('Other OIDC issuer').check();
    await form.getByLabel('Name', {exact: true}).fill('cluster jobs');
    await form.getByLabel('Issuer', {exact: true}).fill(ISSUER);
    await form.getByLabel('Audience').fill('ibyok:cluster');
    await form.getByLabel('Subject', {exact: true}).fill('system:serviceaccount:jobs:*');
    await form.getByLabel('The subject is a pattern').check();
    await form.getByLabel('Bound claims (optional)').fill('cluster=prod-eu\ncluster=prod-us');
    await form.getByRole('button', {name: 'Create identity'}).click();
    await root.page.waitForSelector('.identity-created >> text=--oidc-token-file');
    const oidc = (await call(BASE_A, TOKEN_A, 'GET', '/identities')).body.identities.find((i) => i.name === 'cluster jobs');
    ok(oidc && oidc.issuer === ISSUER && oidc.subjectMatch === 'glob' && JSON.stringify(oidc.boundClaims) === '{"cluster":["prod-eu","prod-us"]}',
      `the server holds ${JSON.stringify(oidc)}`);
    await root.page.getByRole('button', {name: 'Done'}).click();
    ok(await root.page.locator('table.identities tbody tr').count() === 3, 'three identities listed');
    ok(await root.page.locator(`tr[data-identity="${oidc.identityId}"] .badge.glob`).count() === 1, 'the pattern is marked');
    await check(root, 'identities');
    await root.page.setViewportSize({width: 1024, height: 768});
    const fit = await root.page.evaluate(() => {
      const table = document.querySelector('table.identities');
      return {table: table.scrollWidth, box: table.parentElement.clientWidth, page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth};
    });
    ok(fit.table <= fit.box && fit.page <= fit.viewport, `1024 px: the identities table is ${fit.table} px in ${fit.box} px (page ${fit.page} of ${fit.viewport})`);
    await check(root, 'identities-1024');
    await root.page.setViewportSize({width: 1280, height: 860});
  });

  await step('identities: delete asks first; every token issued through it stops working', async () => {
    const oidc = (await call(BASE_A, TOKEN_A, 'GET', '/identities')).body.identities.find((i) => i.name === 'cluster jobs');
    const exchange = await fetch(`${BASE_A}/auth/oidc`, {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({identityId: oidc.identityId, jwt: oidcJwt({aud: 'ibyok:cluster', sub: 'system:serviceaccount:jobs:nightly', cluster: 'prod-us', jti: crypto.randomUUID()})})});
    const issued = await exchange.json();
    ok(exchange.status === 201 && issued.identityId === oidc.identityId, `the exchange: ${exchange.status} ${JSON.stringify(issued)}`);
    ok((await call(BASE_A, issued.token, 'GET', '/keys')).status === 200, 'the exchanged token works');
    await rendered(root, 'identities');
    await root.page.getByRole('button', {name: 'Delete cluster jobs'}).click();
    await root.page.waitForSelector('dialog[open]');
    const text = await root.page.textContent('dialog');
    ok(text.includes('Every token issued through it stops working at once (1 live now)'), `the dialog says: ${text}`);
    await check(root, 'identity-delete-confirm');
    await root.page.locator('dialog').getByRole('button', {name: 'Cancel'}).click();
    ok((await call(BASE_A, TOKEN_A, 'GET', `/identities/${oidc.identityId}`)).status === 200, 'cancel kept the identity');
    ok((await call(BASE_A, issued.token, 'GET', '/keys')).status === 200, 'cancel kept its token');
    await root.page.getByRole('button', {name: 'Delete cluster jobs'}).click();
    await root.page.locator('dialog').getByRole('button', {name: 'Delete identity'}).click();
    await root.page.waitForSelector('.status >> text=Deleted cluster jobs');
    ok(await root.page.locator(`tr[data-identity="${oidc.identityId}"]`).count() === 0, 'the row is gone');
    ok((await call(BASE_A, TOKEN_A, 'GET', `/identities/${oidc.identityId}`)).status === 404, 'the identity is gone');
    ok((await call(BASE_A, issued.token, 'GET', '/keys')).status === 401, 'its token is refused');
  });

  await step('identities: a token without tokens:write creates and deletes none', async () => {
    const viewer = await issue(BASE_A, TOKEN_A, {name: 'identities-viewer', scopes: ['keys:read', 'tokens:read'], expiresIn: 3600});
    const t = await tab(BASE_A);
    await signInWith(t, viewer.token);
    await rendered(t, 'identities');
    ok(await t.page.isVisible('text=Read-only: this token lacks the tokens:write scope'), 'the read-only notice');
    ok(await t.page.locator('form.identity, summary').count() === 0, 'no create form');
    // A token sees the identities made by itself and below it: one without
    // tokens:write has none. The root's list, served to this page, shows
    // how the rows read for it.
    ok(await t.page.isVisible('text=No identities to show'), 'an empty list, said why');
    const list = await call(BASE_A, TOKEN_A, 'GET', '/identities');
    await t.page.route('**/identities?*', (r) => r.fulfill({status: 200, headers: {'content-type': 'application/json'}, body: JSON.stringify(list.body)}));
    await rendered(t, 'identities');
    ok(await t.page.locator('table.identities tbody tr').count() === 2, 'the rows');
    ok(await t.page.getByRole('button', {name: /^Delete/}).count() === 0, 'no delete buttons');
    await check(t, 'identities-readonly');
    await t.page.close();
    await root.page.bringToFront();
  });

  await step('members: invite by GitHub login and by email, change a role, remove after a confirmation', async () => {
    await rendered(root, 'members');
    await check(root, 'members-empty');
    const form = root.page.locator('form.member');
    ok(await form.isVisible(), 'the invite form is open while there is no member');
    await form.getByLabel('GitHub login').fill('octocat');
    await form.getByLabel('Role').selectOption('developer');
    await form.getByLabel('Name (optional)').fill('Mona Lisa');
    await form.getByRole('button', {name: 'Invite'}).click();
    await root.page.waitForSelector('text=Mona Lisa invited as developer.');
    await root.page.getByText('Invite a member').click();
    const again = root.page.locator('form.member');
    await again.getByLabel('Company sign-in (OpenID)').check();
    await again.getByLabel('Email').fill('bo@acme.example');
    await again.getByLabel('Role').selectOption('viewer');
    await again.getByRole('button', {name: 'Invite'}).click();
    await root.page.waitForSelector('text=bo@acme.example invited as viewer.');
    const members = (await call(BASE_A, TOKEN_A, 'GET', '/members')).body.members;
    const mona = members.find((m) => m.login === 'octocat');
    const bo = members.find((m) => m.email === 'bo@acme.example');
    ok(mona && mona.role === 'developer' && mona.name === 'Mona Lisa' && bo && bo.role === 'viewer', `the server holds ${JSON.stringify(members)}`);
    const monaRow = root.page.locator(`tr[data-member="${mona.memberId}"]`);
    const text = await monaRow.textContent();
    ok(text.includes('GitHub') && text.includes('octocat') && text.includes('invited'), `the row: ${text}`);
    await check(root, 'members');
    await monaRow.getByLabel('Role of Mona Lisa').selectOption('admin');
    await root.page.waitForSelector('text=Mona Lisa is now admin.');
    ok((await call(BASE_A, TOKEN_A, 'GET', '/members')).body.members.find((m) => m.memberId === mona.memberId).role === 'admin', 'the new role');
    await root.page.getByRole('button', {name: 'Remove bo@acme.example'}).click();
    const dialog = root.page.locator('dialog.confirm');
    ok((await dialog.textContent()).includes('bo@acme.example') && (await dialog.textContent()).includes('viewer'), 'the confirmation names them');
    await check(root, 'member-remove-confirm');
    await dialog.getByRole('button', {name: 'Remove member'}).click();
    await root.page.waitForSelector('text=bo@acme.example removed.');
    ok((await call(BASE_A, TOKEN_A, 'GET', '/members')).body.members.length === 1, 'one member left');
    // The server's 409 is shown as it is.
    await root.page.getByText('Invite a member').click();
    await root.page.locator('form.member').getByLabel('GitHub login').fill('OctoCat');
    await root.page.locator('form.member').getByRole('button', {name: 'Invite'}).click();
    await root.page.waitForSelector('.banner >> text=github:octocat is a member already');
    root.problems.splice(0); // Chromium logs the 409 itself.
    await root.page.getByRole('button', {name: 'Dismiss'}).click();
  });

  await step('members: a token without members:write sees them read-only; one without members:read has no page', async () => {
    const reader = await issue(BASE_A, TOKEN_A, {name: 'member-reader', scopes: ['members:read', 'keys:read']});
    const t = await tab(BASE_A);
    await signInWith(t, reader.token);
    await rendered(t, 'members');
    ok(await t.page.isVisible('text=Read-only: this token lacks the members:write scope'), 'the read-only notice');
    ok(await t.page.locator('form.member, select.role-select').count() === 0, 'no form, no role menus');
    ok(await t.page.getByRole('button', {name: /^Remove/}).count() === 0, 'no remove buttons');
    await check(t, 'members-readonly');
    await t.page.close();
    const keysOnly = await issue(BASE_A, TOKEN_A, {name: 'no-members', scopes: ['keys:read']});
    const u = await tab(BASE_A);
    await signInWith(u, keysOnly.token);
    ok(await u.page.getByRole('link', {name: 'Members'}).count() === 0, 'no Members link');
    ok(await u.page.locator('nav [aria-disabled="true"]', {hasText: 'Members'}).count() === 1, 'Members shown disabled, with the scope it needs');
    await u.page.close();
    await root.page.bringToFront();
  });

  await step('a revoked token is sent back to sign-in, and forgotten', async () => {
    const victim = await issue(BASE_A, TOKEN_A, {name: 'soon-revoked', scopes: ['keys:read', 'usage:read']});
    const t = await tab(BASE_A);
    await signInWith(t, victim.token);
    ok((await call(BASE_A, TOKEN_A, 'DELETE', `/tokens/${victim.tokenId}`)).status === 204, 'revoked');
    await t.page.getByRole('link', {name: 'Audit'}).click();
    await t.page.waitForSelector('form.signin >> text=The server refused the token (it may have been revoked');
    ok(await t.page.evaluate(() => sessionStorage.length) === 0, 'the token is forgotten');
    await check(t, 'signin-after-401');
    await t.page.close();
    await root.page.bringToFront(); // a background tab's animation frames are throttled
  });

  await step('a 5xx shows the server message and its request id', async () => {
    await root.page.route('**/usage', (r) => r.fulfill({status: 500, headers: {'content-type': 'application/json', 'x-request-id': 'req-console-test-5xx'},
      body: JSON.stringify({error: {code: 'internal', message: 'internal error'}})}));
    await rendered(root, 'usage');
    await root.page.waitForSelector('.banner >> text=internal error');
    ok(await root.page.isVisible('.banner >> text=req-console-test-5xx'), 'the request id is shown');
    await root.page.unroute('**/usage');
    root.problems.splice(0); // Chromium logs the faked 500 itself.
  });

  await step('modes page (no guardrails): save the tenant defaults', async () => {
    await rendered(root, 'modes');
    ok(await root.page.locator('tr[data-env="production"] >> text=none').count() === 1, 'no guardrail');
    await check(root, 'modes');
    await root.page.locator('select[name="staging"]').selectOption('live');
    await root.page.getByRole('button', {name: 'Save defaults'}).click();
    await root.page.waitForSelector('text=Saved the tenant');
    ok((await call(BASE_A, TOKEN_A, 'GET', '/settings/modes')).body.staging === 'live', 'saved');
  });

  await step('daily usage charts after reads: today’s counts per key, per token and in total', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const groq = (await call(BASE_A, TOKEN_A, 'GET', '/keys')).body.keys.find((k) => k.name === 'Groq');
    const app = await issue(BASE_A, TOKEN_A, {name: 'usage-reader', scopes: ['keys:read'], expiresIn: 3600});
    const read = async (token, id, n) => {
      for (let i = 0; i < n; i++) {
        const r = await call(BASE_A, token, 'GET', `/external/keys/${id}/value?env=dev`);
        ok(r.status === 200, `read ${r.status}`);
      }
    };
    await read(TOKEN_A, keyId, 3);
    await read(app.token, groq.keyId, 4);
    await read(app.token, keyId, 1);
    const usage = (await call(BASE_A, TOKEN_A, 'GET', '/usage')).body;
    const total = usage.keys.reduce((n, k) => n + k.retrievals, 0); // every read of this run is today's
    ok(total >= 8, `${total} reads counted`);
    await rendered(root, 'usage');
    const fig = (kind, id) => root.page.locator(`figure.daily[data-kind="${kind}"][data-id="${id}"]`);
    const expect = async (kind, id, n) => {
      const f = fig(kind, id);
      ok(await f.count() === 1, `a ${kind} chart for ${id}`);
      ok(await f.getAttribute('data-today') === String(n), `${kind} ${id}: today ${await f.getAttribute('data-today')}, not ${n}`);
      const caption = await f.locator('figcaption').textContent();
      ok(caption.includes(`${n} read${n === 1 ? '' : 's'} today`), `${kind} caption: ${caption}`);
      const bar = f.locator(`rect.bar.today[data-day="${today}"]`);
      ok(await bar.getAttribute('data-reads') === String(n), `${kind} ${id}: today's bar`);
      ok((await bar.locator('title').textContent()) === `${today}: ${n} read${n === 1 ? '' : 's'}`, `${kind} ${id}: today's bar title`);
      const label = await f.locator('svg').getAttribute('aria-label');
      ok(label.includes(`${n} read${n === 1 ? '' : 's'} on ${today} (today)`), `${kind} ${id}: the chart's text alternative: ${label}`);
    };
    await expect('total', 'tenant', total);
    await expect('key', groq.keyId, 4);
    await expect('key', keyId, usage.keys.find((k) => k.keyId === keyId).retrievals);
    await expect('token', app.tokenId, 5);
    const rootUsage = usage.tokens.find((t) => t.name === 'dev root');
    await expect('token', rootUsage.tokenId, rootUsage.uses);
    // The numbers as a table, newest day first.
    const numbers = root.page.locator('details.numbers', {hasText: 'per token'});
    await numbers.locator('summary').click();
    const head = await numbers.locator('thead th').allTextContents();
    const row = await numbers.locator('tbody tr:first-child > *').allTextContents();
    ok(row[0] === today && row[head.indexOf('usage-reader')] === '5', `the table's today row: ${head} / ${row}`);
    await numbers.locator('summary').click();
    await check(root, 'usage');
    await root.page.setViewportSize({width: 1024, height: 768});
    const wide = await root.page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    ok(wide[0] <= wide[1], `1024 px: the usage page scrolls sideways (${wide})`);
    await check(root, 'usage-1024');
    await root.page.setViewportSize({width: 1280, height: 860});
    await root.page.getByLabel('Range of the daily charts').selectOption('7');
    await root.page.waitForFunction(() => document.querySelectorAll('figure[data-kind="total"] rect.bar').length === 7);
    await expect('token', app.tokenId, 5);
    await check(root, 'usage-7-days');
  });

  await step('the tenant quota on the usage page (ibyok dev --quota 100000)', async () => {
    const usage = (await call(BASE_A, TOKEN_A, 'GET', '/usage')).body;
    const reads = usage.keys.reduce((n, k) => n + k.retrievals, 0);
    ok(usage.quota && usage.quota.readsPerMonth === 100000 && usage.quota.used === reads, `quota ${JSON.stringify(usage.quota)}, ${reads} reads`);
    await rendered(root, 'usage');
    const line = await root.page.textContent('.quota p');
    ok(line.startsWith(`${reads} of 100,000 reads this month (0 %). Resets in `) && line.includes(usage.quota.resetsAt.slice(0, 10)), `the quota line: ${line}`);
    ok(await root.page.getAttribute('progress', 'value') === String(reads) && await root.page.getAttribute('progress', 'max') === '100000', 'the quota bar');
    await check(root, 'usage-quota', '.quota');
  });

  await step('audit: newest first, paged by cursor, denied events marked', async () => {
    await rendered(root, 'audit');
    await root.page.getByLabel('Per page').selectOption('25');
    await root.page.waitForSelector('text=Page 1: 25 of 25');
    ok(await root.page.locator('tr.denied').count() > 0, 'denied events are marked');
    const first = await root.page.getAttribute('table.audit tbody tr:first-child', 'data-request');
    for (const [width, height] of [[1280, 800], [1024, 768]]) {
      await root.page.setViewportSize({width, height});
      const fit = await root.page.evaluate(() => {
        const table = document.querySelector('table.audit');
        const box = table.parentElement;
        const requestCol = [...table.querySelectorAll('th:last-child, td:last-child')].map((c) => c.getBoundingClientRect().right);
        return {table: table.scrollWidth, box: box.clientWidth, boxScroll: box.scrollWidth, page: document.documentElement.scrollWidth,
          viewport: document.documentElement.clientWidth, request: Math.max(...requestCol)};
      });
      ok(fit.table <= fit.box && fit.boxScroll <= fit.box, `${width} px: the audit table is ${fit.table} px wide in ${fit.box} px`);
      ok(fit.page <= fit.viewport, `${width} px: the page scrolls sideways (${fit.page} px)`);
      ok(fit.request <= fit.viewport, `${width} px: the request column ends at ${fit.request} px, off-screen`);
      await check(root, width === 1280 ? 'audit' : `audit-${width}`);
    }
    await root.page.setViewportSize({width: 1280, height: 860});
    // A shortened id copies in full.
    await root.page.locator('table.audit tbody tr:first-child td:last-child button.id').click();
    ok(await root.page.evaluate(() => navigator.clipboard.readText()) === first, 'the request id is copied whole');
    await root.page.getByRole('button', {name: 'Older →'}).click();
    await root.page.waitForSelector('text=Page 2:');
    const second = await root.page.getAttribute('table.audit tbody tr:first-child', 'data-request');
    ok(first !== second, 'page 2 differs');
    await root.page.getByRole('button', {name: '← Newer'}).click();
    await root.page.waitForSelector('text=Page 1:');
    ok(await root.page.getAttribute('table.audit tbody tr:first-child', 'data-request') === first, 'back to page 1');
    await root.page.getByLabel('Key', {exact: true}).fill('Groq');
    ok(await root.page.locator('table.audit tbody tr').count() > 0, 'the key filter matches names');
    ok(await root.page.locator('table.audit tbody tr td:nth-child(4)', {hasNotText: 'Groq'}).count() === 0, 'only Groq rows');
    await root.page.getByLabel('Key', {exact: true}).fill('');
    await root.page.getByLabel('Outcome').selectOption('denied');
    ok(await root.page.locator('table.audit tbody tr:not(.denied)').count() === 0, 'the outcome filter');
  });

  await step('guardrails shown on a server started with guardrails', async () => {
    const t = await tab(BASE_B);
    await signInWith(t, TOKEN_B);
    await rendered(t, 'modes');
    const prod = await t.page.textContent('tr[data-env="production"]');
    const staging = await t.page.textContent('tr[data-env="staging"]');
    ok(prod.includes('forced live') && prod.includes('PROD_MOCK_ALLOWED=false'), `production row: ${prod}`);
    ok(staging.includes('forced live') && staging.includes('STAGING_MODE_FORCED'), `staging row: ${staging}`);
    ok(await t.page.locator('tr[data-env="production"] option[value="mock"]').isDisabled(), 'production mock cannot be chosen');
    await check(t, 'modes-guardrails');
    await rendered(t, 'usage');
    ok(await t.page.isVisible('text=No monthly quota: reads are unlimited.'), 'a tenant without a quota');
    await t.page.close();
    await root.page.bringToFront(); // a background tab's animation frames are throttled
  });

  await step(`figure: the tokens page with ${BENCH_TOKENS} tokens`, async () => {
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < BENCH_TOKENS) {
        next += 1;
        const r = await call(BASE_A, TOKEN_A, 'POST', '/tokens', {name: `bench-${next}`, scopes: ['keys:read'], expiresIn: 3600 * 24 * (next % 60 + 1)});
        ok(r.status === 201, `bench token ${r.status}`);
      }
    };
    await Promise.all(Array.from({length: 8}, worker));
    figures[`creating ${BENCH_TOKENS} tokens through the API (setup, 8 at a time)`] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    const t1 = Date.now();
    await rendered(root, 'tokens');
    const total = Date.now() - t1;
    const inPage = await root.page.getAttribute('main .page', 'data-render-ms');
    ok(await root.page.locator('table.tokens tbody tr').count() <= 100, 'one page of rows at most');
    const t2 = Date.now();
    await root.page.getByRole('button', {name: 'Next →'}).click();
    await root.page.waitForSelector('text=Page 2 of');
    const paging = Date.now() - t2;
    const t3 = Date.now();
    await root.page.getByLabel('Show').selectOption('expiring');
    const filtering = Date.now() - t3;
    figures[`tokens page with ${BENCH_TOKENS + 8} tokens: navigation to render / fetch+tree+render in page / next page / filter`] =
      `${total} ms / ${inPage} ms / ${paging} ms / ${filtering} ms`;
    await root.page.getByLabel('Show').selectOption('all');
    await check(root, 'tokens-5000');
  });

  await step('an expired token is sent back to sign-in at its expiry, and forgotten', async () => {
    const {page} = expiring.tab;
    const left = Date.parse(expiring.expiresAt) - Date.now();
    figures['waited for the 60-second token to expire, after the other flows'] = `${Math.max(0, Math.round(left / 1000))} s`;
    await page.bringToFront();
    await page.waitForSelector('form.signin >> text=The token expired', {timeout: Math.max(0, left) + 15000});
    ok(Date.now() >= Date.parse(expiring.expiresAt), 'not before its expiry');
    ok(await page.evaluate(() => sessionStorage.length) === 0, 'the token is forgotten');
    ok((await call(BASE_A, expiring.token, 'GET', '/keys')).status === 401, 'the server refuses it');
    await check(expiring.tab, 'signin-expired');
    await page.close();
  });

  await step('sign out forgets the token', async () => {
    await root.page.getByRole('button', {name: 'Sign out'}).click();
    await root.page.waitForSelector('form.signin >> text=Signed out');
    ok(await root.page.evaluate(() => sessionStorage.length + localStorage.length) === 0, 'storage is empty');
    await root.page.goto(`${BASE_A}/console/#/keys`);
    await root.page.waitForSelector('form.signin');
  });
} finally {
  await context.close();
  oidcIssuer.close();
  oidcIssuer.closeAllConnections();
  fs.rmSync(userDataDir, {recursive: true, force: true});
  console.log('\nFigures (measured, not asserted):');
  for (const [k, v] of Object.entries(figures)) console.log(`  ${k}: ${v}`);
  fs.writeFileSync(path.join(OUT_DIR, 'figures.json'), JSON.stringify(figures, null, 2));
  console.log(`\n${results.filter((r) => r[1] === 'ok').length}/${results.length} steps passed; screenshots in ${OUT_DIR}`);
}
