// Audit: newest first, paged by cursor, filtered (action, outcome, person,
// key, actor) within the page; denied and limited events are marked. Each
// event's actor is named (a person for a session, a token, a workload
// through its identity) with a badge of its kind. Ids are shown short (key
// and token names beside them, from GET /usage) and copy in full on a click,
// so that the table fits the window without scrolling.

import {api} from './api.js';
import {badge, copyableId, field, h, replace, select, when} from './dom.js';

const ACTIONS = ['key.read', 'key.create', 'key.update', 'key.rotate', 'key.promote', 'key.delete', 'token.create', 'token.revoke', 'token.leaked', 'settings.update', 'auth.denied', 'auth.limited', 'auth.exchange', 'identity.create', 'identity.delete', 'member.create', 'member.update', 'member.delete', 'auth.signin'];

/** An actor's kind as people read it. */
const KINDS = {session: 'person', token: 'token', identity: 'workload'};

export async function auditPage(root, {ui, stale}) {
  const cursors = [null];
  let at = 0;
  let limit = 50;
  let events = [];
  let next = null;
  const filters = {action: '', outcome: '', person: '', key: '', token: ''};
  // The people seen acting on the pages shown so far: member id → name.
  const people = new Map();
  // Names for the ids (usage:read, which this page needs, lists every key
  // and token of the tenant); an id without one stays an id.
  const names = new Map();
  const named = api('GET', '/usage').then((u) => {
    for (const k of u.keys) names.set(k.keyId, k.name);
    for (const t of u.tokens) names.set(t.tokenId, t.name);
  }, () => {});

  const tbody = h('tbody');
  const info = h('p', {class: 'muted count', 'aria-live': 'polite'});
  const newer = h('button', {type: 'button', class: 'secondary small', onclick: () => go(at - 1)}, '← Newer');
  const older = h('button', {type: 'button', class: 'secondary small', onclick: () => go(at + 1)}, 'Older →');
  const actionSel = select([['', 'any'], ...ACTIONS.map((a) => [a, a])], '', {onchange: () => { filters.action = actionSel.value; draw(); }});
  const outcomeSel = select([['', 'any'], ['ok', 'ok'], ['denied', 'denied'], ['limited', 'limited']], '', {onchange: () => { filters.outcome = outcomeSel.value; draw(); }});
  const keyIn = h('input', {type: 'search', placeholder: 'name or key_…', oninput: () => { filters.key = keyIn.value.trim().toLowerCase(); draw(); }});
  const tokIn = h('input', {type: 'search', placeholder: 'name or tok_…', oninput: () => { filters.token = tokIn.value.trim().toLowerCase(); draw(); }});
  const personSel = h('select', {onchange: () => { filters.person = personSel.value; draw(); }});
  function personOptions() {
    const seen = [...people].sort((a, b) => a[1].localeCompare(b[1]));
    personSel.replaceChildren(...[['', 'anyone'], ...seen].map(([v, label]) => h('option', {value: v, selected: v === filters.person}, label)));
  }
  personOptions();
  const limitSel = select([['25', '25'], ['50', '50'], ['100', '100']], '50', {onchange: () => {
    limit = Number(limitSel.value);
    cursors.length = 1;
    go(0);
  }});

  const hit = (id, q) => !q || (id || '').toLowerCase().includes(q) || (names.get(id) || '').toLowerCase().includes(q);

  const actorHit = (e, q) => hit(e.tokenId, q) || Boolean(q && e.actor && e.actor.name && e.actor.name.toLowerCase().includes(q));

  function shown() {
    return events.filter((e) => (!filters.action || e.action === filters.action)
      && (!filters.outcome || e.outcome === filters.outcome || (filters.outcome === 'limited' && e.action === 'auth.limited'))
      && (!filters.person || (e.actor && e.actor.memberId === filters.person))
      && hit(e.keyId, filters.key) && actorHit(e, filters.token));
  }

  /** Who made the request: a person (a session), a token or a workload, by name, with the token's id below. */
  function actorCell(e) {
    const a = e.actor;
    const id = e.tokenId || (a && a.tokenId);
    const name = a && a.name ? a.name : names.get(id);
    const kind = a ? KINDS[a.kind] || a.kind : null;
    if (!name && !id) return h('td', {class: 'muted'}, '—');
    return h('td', {class: ['subject', 'actor'], 'data-kind': kind},
      name ? h('div', {class: 'name'}, name) : null,
      h('div', {class: 'kind-id'}, kind ? badge(kind, `actor ${kind}`) : null, id ? copyableId(id, 'token id') : null));
  }

  /** A key or token: its name when known, its id (short, copyable) below. */
  function subject(id, what) {
    if (!id) return h('td', {class: 'muted'}, '—');
    const name = names.get(id);
    return h('td', {class: 'subject'}, name ? h('div', {class: 'name'}, name) : null, copyableId(id, what));
  }

  function draw() {
    const list = shown();
    tbody.replaceChildren(...list.map((e) => {
      const limited = e.action === 'auth.limited';
      const denied = e.outcome !== 'ok' || limited;
      return h('tr', {class: denied ? 'denied' : null, 'data-request': e.requestId},
        h('td', null, when(e.at)),
        h('td', null, h('span', {class: 'mono'}, e.action), e.version ? h('div', {class: 'sub'}, `version ${e.version}`) : null),
        h('td', null, denied ? badge(limited ? 'limited' : e.outcome, 'denied') : badge(e.outcome, 'ok')),
        subject(e.keyId, 'key id'),
        actorCell(e),
        h('td', null, e.environment ? [e.environment, e.effectiveMode ? h('div', {class: 'sub'}, e.effectiveMode) : null] : h('span', {class: 'muted'}, '—')),
        h('td', {class: 'client'},
          h('div', {class: 'mono'}, e.sourceIp || '—'),
          e.userAgent ? h('div', {class: 'ua', title: e.userAgent}, e.userAgent) : null),
        h('td', {class: 'request'}, e.requestId ? copyableId(e.requestId, 'request id') : '—'));
    }));
    replace(info, `Page ${at + 1}: ${list.length} of ${events.length} events shown${next ? '' : ' (the oldest page)'}`);
    newer.disabled = at === 0;
    older.disabled = !next;
  }

  async function go(i) {
    try {
      const [r] = await Promise.all([api('GET', '/audit', {query: {limit, cursor: cursors[i]}}), named]);
      if (stale()) return;
      at = i;
      events = r.events;
      next = r.nextCursor;
      let more = false;
      for (const e of events) {
        const a = e.actor;
        if (a && a.kind === 'session' && a.memberId && a.name && people.get(a.memberId) !== a.name) {
          people.set(a.memberId, a.name);
          more = true;
        }
      }
      if (more) personOptions();
      cursors[i + 1] = next;
      cursors.length = next ? i + 2 : i + 1;
      draw();
    } catch (err) {
      ui.error(err);
    }
  }

  replace(root,
    h('div', {class: 'toolbar audit-tools'}, field('Action', actionSel), field('Outcome', outcomeSel), field('Person', personSel), field('Key', keyIn), field('Who', tokIn), field('Per page', limitSel)),
    h('p', {class: 'muted'}, 'Newest first. The filters apply to the page shown. Ids are shortened: hover for the whole id, click to copy it.'),
    h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Audit events'}, h('table', {class: 'list audit'},
      h('caption', {class: 'sr-only'}, 'Audit events, newest first'),
      h('thead', null, h('tr', null, ['When', 'Action', 'Outcome', 'Key', 'Who', 'Env · mode', 'Client', 'Request'].map((t) => h('th', {scope: 'col'}, t)))),
      tbody)),
    h('div', {class: 'pager'}, newer, info, older));
  await go(0);
}
