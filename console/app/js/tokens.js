// Tokens: the tree (issuer → children) in pages of 100 tokens, filters,
// creation (scopes limited to the caller's; the new token shown once) and
// revocation (the confirmation counts the descendants that go with it).
// A member's anchor is no token of its own here: it heads their subtree as
// a row naming the person, their sessions read "Ana Lima’s session", and
// what they created says "created by Ana Lima".

import {ALL_SCOPES, api, can, lacks, listAll, session} from './api.js';
import {badge, confirmDialog, field, fmt, h, replace, select, when} from './dom.js';
import {isAnchor, isSession, memberNames, peopleOf, sessionLabel} from './people.js';

const PAGE = 100;
const DAY = 86400 * 1000;
const EXPIRY_PRESETS = [['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days'], ['7776000', '90 days'], ['31536000', '1 year']];

export function stateOf(t, now = Date.now()) {
  if (t.revokedAt) return 'revoked';
  if (Date.parse(t.expiresAt) <= now) return 'expired';
  return 'live';
}

/**
 * Depth-first order of the tree, each token with its depth, descendants and
 * group (the member's anchor above it, if any).
 */
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
  const stack = roots.slice().reverse().map((t) => [t, 0, false, null]);
  while (stack.length) {
    const [t, depth, done, group] = stack.pop();
    if (done) {
      const kids = children.get(t.tokenId) || [];
      descendants.set(t.tokenId, kids.reduce((n, c) => n + 1 + descendants.get(c.tokenId), 0));
      continue;
    }
    out.push({t, depth, group});
    stack.push([t, depth, true, group]);
    const kids = children.get(t.tokenId) || [];
    const below = isAnchor(t) ? t : group;
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, false, below]);
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

/** "AL" for Ana Lima. */
function initials(name) {
  const words = name.trim().split(/\s+/).filter((w) => /\p{L}|\p{N}/u.test(w));
  const first = (w) => [...w][0];
  return (words.length > 1 ? first(words[0]) + first(words[words.length - 1]) : [...(words[0] || '?')].slice(0, 2).join('')).toUpperCase();
}

export async function tokensPage(root, {ui, stale}) {
  const started = performance.now();
  const [tokens, keys, names] = await Promise.all([
    listAll('/tokens', 'tokens'),
    can('keys:list') ? listAll('/keys', 'keys').catch(() => []) : Promise.resolve([]),
    memberNames(),
  ]);
  if (stale()) return;
  const writable = can('tokens:write');
  const keyNames = new Map(keys.map((k) => [k.keyId, k.name]));
  const rateLimits = tokens.some((t) => 'rateLimit' in t);
  const people = peopleOf(tokens, names);
  // A session lists its member's subtree but not the anchor above it: a
  // stand-in heads the subtree here all the same.
  const listed = new Set(tokens.map((t) => t.tokenId));
  const standIns = [...people].filter(([id]) => !listed.has(id))
    .map(([id, p]) => ({tokenId: id, memberId: p.memberId, name: p.name, issuedBy: null, scopes: [], standIn: true}));
  const {rows, descendants} = flattenTree(standIns.length ? tokens.concat(standIns) : tokens);
  // Per person: their sessions and what they created (all of it, any state).
  const groups = new Map();
  for (const {t, group} of rows) {
    if (!group) continue;
    const g = groups.get(group.tokenId) || {sessions: 0, created: 0};
    if (isSession(t) && t.issuedBy === group.tokenId) g.sessions += 1;
    else g.created += 1;
    groups.set(group.tokenId, g);
  }
  const personOf = (id) => people.get(id);
  /** How a token reads: a session as its person's, any other by its name. */
  const label = (t) => (isSession(t) && personOf(t.issuedBy) ? sessionLabel(personOf(t.issuedBy).name) : t.name);
  /** The person who created `t` from a session (its issuer is their anchor). */
  const creator = (t) => (t.issuedBy && !isSession(t) ? personOf(t.issuedBy) : null);
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
  const search = h('input', {type: 'search', placeholder: 'name, person or tok_…', oninput: () => {
    query = search.value.trim().toLowerCase();
    page = 0;
    draw();
  }});
  const created = h('div', {class: 'created', 'aria-live': 'polite'});

  const hit = (t) => {
    if (label(t).toLowerCase().includes(query) || t.tokenId.toLowerCase().includes(query)) return true;
    const by = creator(t);
    return Boolean(by && by.name.toLowerCase().includes(query));
  };

  /** The tokens shown (anchors are not tokens here: they head their group). */
  function visible() {
    const now = Date.now();
    return rows.filter(({t}) => !isAnchor(t) && matches(filter, t, now) && (!query || hit(t)));
  }

  /** Why an anchor ended: its member was removed, or their role lowered (a member still listed). */
  const endedWhy = (a) => {
    if (!can('members:read') || !names.size) return 'ended: removed, or their role lowered';
    return names.has(a.memberId) ? 'ended when their role was lowered' : 'ended when they were removed';
  };

  /** The row heading a member's sessions and what they created. */
  function personRow(a, columns) {
    const p = personOf(a.tokenId);
    const name = p ? p.name : a.name;
    const g = groups.get(a.tokenId) || {sessions: 0, created: 0};
    const me = session.member && a.memberId === session.member.memberId;
    const ended = stateOf(a) !== 'live';
    const counts = [
      `${fmt.format(g.sessions)} session${g.sessions === 1 ? '' : 's'}`,
      `${fmt.format(g.created)} token${g.created === 1 ? '' : 's'} created`,
    ].join(' · ');
    return h('tr', {class: ['person', ended && 'ended'], 'data-person': a.memberId},
      h('td', {colspan: columns},
        h('div', {class: 'person-head'},
          h('span', {class: 'avatar', 'aria-hidden': 'true'}, initials(name)),
          h('span', {class: 'name'}, name),
          badge('person', 'person'), me ? badge('you', 'you') : null,
          h('span', {class: 'sub'}, counts),
          ended ? h('span', {class: 'sub ended-note'}, `· ${endedWhy(a)}`) : null)));
  }

  function row({t, depth}) {
    const state = stateOf(t);
    const kids = descendants.get(t.tokenId) || 0;
    const me = t.tokenId === session.tokenId;
    const by = creator(t);
    return h('tr', {'data-token': t.tokenId, class: [state, isSession(t) && 'session']},
      h('td', null, h('div', {class: 'tree', 'data-depth': Math.min(depth, 8)},
        depth ? h('span', {class: 'branch', 'aria-hidden': 'true'}, '└ ') : null,
        h('span', {class: 'name'}, label(t)), me ? badge('you', 'you') : null,
        by ? h('div', {class: 'by'}, t.identityId ? 'exchanged through an identity of ' : 'created by ', h('span', {class: 'person-name'}, by.name)) : null,
        h('div', {class: 'sub mono'}, t.tokenId, kids ? ` · ${kids} below` : ''))),
      h('td', null, t.scopes.map((s) => badge(s, s.endsWith(':write') ? 'write' : 'read'))),
      h('td', null, t.keyIds ? h('span', {title: t.keyIds.join(', ')}, t.keyIds.map((k) => keyNames.get(k) || k).join(', ')) : h('span', {class: 'muted'}, 'all keys')),
      h('td', {class: 'mono'}, t.allowedCidrs ? t.allowedCidrs.join(', ') : h('span', {class: 'muted'}, 'any')),
      h('td', null, when(t.expiresAt)),
      rateLimits ? h('td', {class: 'num'}, t.rateLimit ? `${fmt.format(t.rateLimit)}/min` : '—') : null,
      h('td', null, when(t.lastUsedAt)),
      h('td', null, badge(state, state)),
      h('td', {class: 'actions'}, writable && state !== 'revoked'
        ? h('button', {type: 'button', class: 'danger small', 'aria-label': `Revoke ${label(t)}`, onclick: () => revoke(t)}, 'Revoke')
        : null));
  }

  function draw() {
    const list = visible();
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = list.slice(page * PAGE, (page + 1) * PAGE);
    // Each person's group is headed by their row (again on a page that
    // starts inside it).
    const out = [];
    let group = null;
    for (const r of slice) {
      if (r.group && r.group !== group) out.push(personRow(r.group, headers.length));
      group = r.group;
      out.push(row(r));
    }
    tbody.replaceChildren(...out);
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
      ? `Revoke “${label(t)}” and the ${n} live token${n === 1 ? '' : 's'} issued from it? Every request they make is refused from now on.`
      : `Revoke “${label(t)}”? It has no live descendants. Every request it makes is refused from now on.`;
    if (!(await confirmDialog(n ? `Revoke ${n + 1} tokens?` : 'Revoke token?', msg, 'Revoke'))) return;
    try {
      await api('DELETE', `/tokens/${encodeURIComponent(t.tokenId)}`);
      if (!session.token) return;
      // Redrawn first: the message tells that the table is current.
      await tokensPage(root, {ui, stale});
      ui.say(`Revoked ${label(t)}${n ? ` and ${n} descendant${n === 1 ? '' : 's'}` : ''}.`);
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
      h('caption', {class: 'sr-only'}, 'Tokens, issuer above its children; a person’s row above their sessions and the tokens they created'),
      h('thead', null, h('tr', null, headers.map((t) => h('th', {scope: 'col', class: t === 'Rate limit' ? 'num' : null}, t)))),
      tbody)),
    pager);
  draw();
  root.dataset.renderMs = String(Math.round(performance.now() - started));
}
