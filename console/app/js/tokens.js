// Tokens: the tree (issuer → children) in pages of 100 rows, filters,
// creation (scopes limited to the caller's; the new token shown once) and
// revocation (the confirmation counts the descendants that go with it).

import {ALL_SCOPES, api, can, lacks, listAll, session} from './api.js';
import {badge, confirmDialog, field, fmt, h, replace, select, when} from './dom.js';

const PAGE = 100;
const DAY = 86400 * 1000;
const EXPIRY_PRESETS = [['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days'], ['7776000', '90 days'], ['31536000', '1 year']];

export function stateOf(t, now = Date.now()) {
  if (t.revokedAt) return 'revoked';
  if (Date.parse(t.expiresAt) <= now) return 'expired';
  return 'live';
}

/** Depth-first order of the tree, each token with its depth and descendants. */
export function flattenTree(tokens) {
  const byId = new Map(tokens.map((t) => [t.tokenId, t]));
  const children = new Map();
  const roots = [];
  for (const t of tokens) {
    if (t.issuedBy && byId.has(t.issuedBy)) {
      if (!children.has(t.issuedBy)) children.set(t.issuedBy, []);
      children.get(t.issuedBy).push(t);
    } else {
      roots.push(t);
    }
  }
  const out = [];
  const descendants = new Map();
  // Iterative, so that a deep chain cannot overflow the stack.
  const stack = roots.slice().reverse().map((t) => [t, 0, false]);
  while (stack.length) {
    const [t, depth, done] = stack.pop();
    if (done) {
      const kids = children.get(t.tokenId) || [];
      descendants.set(t.tokenId, kids.reduce((n, c) => n + 1 + descendants.get(c.tokenId), 0));
      continue;
    }
    out.push({t, depth});
    stack.push([t, depth, true]);
    const kids = children.get(t.tokenId) || [];
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, false]);
  }
  return {rows: out, descendants};
}

const FILTERS = [
  ['all', 'All tokens'],
  ['live', 'Live'],
  ['expiring', 'Expiring within 7 days'],
  ['unused', 'Unused for 30 days'],
  ['revoked', 'Revoked'],
  ['expired', 'Expired'],
];

function matches(filter, t, now) {
  const state = stateOf(t, now);
  switch (filter) {
    case 'live': return state === 'live';
    case 'expiring': return state === 'live' && Date.parse(t.expiresAt) - now <= 7 * DAY;
    case 'unused': return state === 'live' && now - Date.parse(t.lastUsedAt || t.createdAt) >= 30 * DAY;
    case 'revoked': return state === 'revoked';
    case 'expired': return state === 'expired';
    default: return true;
  }
}

export async function tokensPage(root, {ui, stale}) {
  const started = performance.now();
  const [tokens, keys] = await Promise.all([
    listAll('/tokens', 'tokens'),
    can('keys:list') ? listAll('/keys', 'keys').catch(() => []) : Promise.resolve([]),
  ]);
  if (stale()) return;
  const writable = can('tokens:write');
  const keyNames = new Map(keys.map((k) => [k.keyId, k.name]));
  const rateLimits = tokens.some((t) => 'rateLimit' in t);
  const {rows, descendants} = flattenTree(tokens);
  let filter = 'all';
  let query = '';
  let page = 0;

  const tbody = h('tbody');
  const pager = h('div', {class: 'pager'});
  const count = h('p', {class: 'muted count', 'aria-live': 'polite'});
  const filterSel = select(FILTERS.map(([v, l]) => [v, l]), filter, {onchange: () => {
    filter = filterSel.value;
    page = 0;
    draw();
  }});
  const search = h('input', {type: 'search', placeholder: 'name or tok_…', oninput: () => {
    query = search.value.trim().toLowerCase();
    page = 0;
    draw();
  }});
  const created = h('div', {class: 'created', 'aria-live': 'polite'});

  function visible() {
    const now = Date.now();
    return rows.filter(({t}) => matches(filter, t, now) && (!query || t.name.toLowerCase().includes(query) || t.tokenId.toLowerCase().includes(query)));
  }

  function row({t, depth}) {
    const state = stateOf(t);
    const kids = descendants.get(t.tokenId) || 0;
    const me = t.tokenId === session.tokenId;
    return h('tr', {'data-token': t.tokenId, class: state},
      h('td', null, h('div', {class: 'tree', 'data-depth': Math.min(depth, 8)},
        depth ? h('span', {class: 'branch', 'aria-hidden': 'true'}, '└ ') : null,
        h('span', {class: 'name'}, t.name), me ? badge('you', 'you') : null,
        h('div', {class: 'sub mono'}, t.tokenId, kids ? ` · ${kids} below` : ''))),
      h('td', null, t.scopes.map((s) => badge(s, s.endsWith(':write') ? 'write' : 'read'))),
      h('td', null, t.keyIds ? h('span', {title: t.keyIds.join(', ')}, t.keyIds.map((k) => keyNames.get(k) || k).join(', ')) : h('span', {class: 'muted'}, 'all keys')),
      h('td', {class: 'mono'}, t.allowedCidrs ? t.allowedCidrs.join(', ') : h('span', {class: 'muted'}, 'any')),
      h('td', null, when(t.expiresAt)),
      rateLimits ? h('td', {class: 'num'}, t.rateLimit ? `${fmt.format(t.rateLimit)}/min` : '—') : null,
      h('td', null, when(t.lastUsedAt)),
      h('td', null, badge(state, state)),
      h('td', {class: 'actions'}, writable && state !== 'revoked'
        ? h('button', {type: 'button', class: 'danger small', 'aria-label': `Revoke ${t.name}`, onclick: () => revoke(t)}, 'Revoke')
        : null));
  }

  function draw() {
    const list = visible();
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = list.slice(page * PAGE, (page + 1) * PAGE);
    tbody.replaceChildren(...slice.map(row));
    replace(count, list.length
      ? `${fmt.format(page * PAGE + 1)}–${fmt.format(page * PAGE + slice.length)} of ${fmt.format(list.length)} tokens`
      : 'No token matches.');
    replace(pager,
      h('button', {type: 'button', class: 'secondary small', disabled: page === 0, onclick: () => { page -= 1; draw(); }}, '← Previous'),
      h('span', null, `Page ${page + 1} of ${pages}`),
      h('button', {type: 'button', class: 'secondary small', disabled: page >= pages - 1, onclick: () => { page += 1; draw(); }}, 'Next →'));
  }

  async function revoke(t) {
    const live = [];
    const start = rows.findIndex((r) => r.t === t);
    for (let i = start + 1; i < rows.length && rows[i].depth > rows[start].depth; i++) {
      if (stateOf(rows[i].t) === 'live') live.push(rows[i].t);
    }
    const n = live.length;
    const msg = n
      ? `Revoke “${t.name}” and the ${n} live token${n === 1 ? '' : 's'} issued from it? Every request they make is refused from now on.`
      : `Revoke “${t.name}”? It has no live descendants. Every request it makes is refused from now on.`;
    if (!(await confirmDialog(n ? `Revoke ${n + 1} tokens?` : 'Revoke token?', msg, 'Revoke'))) return;
    try {
      await api('DELETE', `/tokens/${encodeURIComponent(t.tokenId)}`);
      if (!session.token) return;
      // Redrawn first: the message tells that the table is current.
      await tokensPage(root, {ui, stale});
      ui.say(`Revoked ${t.name}${n ? ` and ${n} descendant${n === 1 ? '' : 's'}` : ''}.`);
    } catch (err) {
      ui.error(err);
    }
  }

  function createForm() {
    const name = h('input', {type: 'text', required: true, maxlength: 100, autocomplete: 'off'});
    const scopeBoxes = ALL_SCOPES.map((s) => {
      const allowed = can(s);
      const box = h('input', {type: 'checkbox', value: s, disabled: !allowed});
      return {s, box, el: h('label', {class: ['check', !allowed && 'disabled']}, box, ` ${s}`,
        allowed ? null : h('span', {class: 'why'}, ' (your token lacks it)'))};
    });
    const mine = session.self && session.self.keyIds;
    const pickable = keys.filter((k) => !mine || mine.includes(k.keyId));
    const keyBoxes = pickable.map((k) => {
      const box = h('input', {type: 'checkbox', value: k.keyId});
      return {box, el: h('label', {class: 'check'}, box, ` ${k.name}`)};
    });
    const cidrs = h('textarea', {rows: 2, placeholder: '203.0.113.0/24, one a line', spellcheck: 'false'});
    const expiry = select(EXPIRY_PRESETS, '2592000');
    const rate = h('input', {type: 'number', min: 1, max: 100000, step: 1, disabled: !rateLimits, placeholder: rateLimits ? 'unlimited' : ''});
    const form = h('form', {class: 'add', 'aria-label': 'Create a token'},
      h('div', {class: 'row'}, field('Name', name), field('Expires in', expiry, 'Capped at your own token’s expiry.'),
        field('Rate limit (requests/minute)', rate, rateLimits ? 'Empty: inherit yours, or none.' : 'This server does not support rate limits yet.')),
      h('fieldset', null, h('legend', null, 'Scopes (at most your own)'), h('div', {class: 'checks'}, scopeBoxes.map((b) => b.el))),
      h('fieldset', null, h('legend', null, mine ? 'Keys (within your own allow-list; none ticked inherits it)' : 'Keys (none ticked: all keys)'),
        keyBoxes.length ? h('div', {class: 'checks'}, keyBoxes.map((b) => b.el)) : h('p', {class: 'muted'}, can('keys:list') ? 'No keys.' : 'Your token cannot list keys.')),
      field('Allowed source addresses (CIDRs, optional)', cidrs),
      h('button', {type: 'submit'}, 'Create token'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const scopes = scopeBoxes.filter((b) => b.box.checked).map((b) => b.s);
      if (!scopes.length) {
        ui.error(new Error('Choose at least one scope.'));
        return;
      }
      const body = {name: name.value, scopes, expiresIn: Number(expiry.value)};
      const keyIds = keyBoxes.filter((b) => b.box.checked).map((b) => b.box.value);
      if (keyIds.length) body.keyIds = keyIds;
      const cidrList = cidrs.value.split(/[\s,]+/).filter(Boolean);
      if (cidrList.length) body.allowedCidrs = cidrList;
      if (rateLimits && rate.value) body.rateLimit = Number(rate.value);
      try {
        const r = await api('POST', '/tokens', {body});
        form.reset();
        await tokensPage(root, {ui, stale});
        showCreated(r);
      } catch (err) {
        ui.error(err);
      }
    });
    return form;
  }

  function showCreated(r) {
    const out = root.querySelector('.created');
    const value = h('input', {type: 'text', readonly: true, value: r.token, class: 'mono secret', 'aria-label': 'The new token', spellcheck: 'false'});
    const copied = h('span', {class: 'muted', role: 'status'});
    replace(out, h('div', {class: 'card once', role: 'region', 'aria-labelledby': 'once-title'},
      h('h2', {id: 'once-title'}, `Token “${r.name}” created`),
      h('p', {class: 'warn'}, 'Copy it now: it is shown once and cannot be seen again. Anyone holding it has its scopes.'),
      h('div', {class: 'copyrow'}, value,
        h('button', {type: 'button', onclick: async () => {
          try {
            await navigator.clipboard.writeText(value.value);
            replace(copied, 'Copied.');
          } catch {
            value.select();
            replace(copied, 'Select and copy it by hand (the clipboard is not available).');
          }
        }}, 'Copy'), copied),
      h('button', {type: 'button', class: 'secondary', onclick: () => replace(out)}, 'Done, hide it')));
  }

  const notice = writable ? null : h('p', {class: 'notice readonly'}, `Read-only: ${lacks('tokens:write')}, so creating and revoking are disabled.`);
  const headers = ['Token', 'Scopes', 'Keys', 'CIDRs', 'Expires', rateLimits ? 'Rate limit' : null, 'Last used', 'State', ''].filter((x) => x !== null);
  replace(root,
    notice,
    created,
    writable ? h('details', {class: 'card', open: tokens.length < 20}, h('summary', null, 'Create a token'), createForm()) : null,
    h('div', {class: 'toolbar'}, field('Show', filterSel), field('Search', search), count),
    h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Tokens'}, h('table', {class: 'list tokens'},
      h('caption', {class: 'sr-only'}, 'Tokens, issuer above its children'),
      h('thead', null, h('tr', null, headers.map((t) => h('th', {scope: 'col', class: t === 'Rate limit' ? 'num' : null}, t)))),
      tbody)),
    pager);
  draw();
  root.dataset.renderMs = String(Math.round(performance.now() - started));
}
