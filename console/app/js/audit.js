// Audit: newest first, paged by cursor, filtered (action, outcome, key,
// token) within the page; denied and limited events are marked.

import {api} from './api.js';
import {badge, field, h, replace, select, when} from './dom.js';

const ACTIONS = ['key.read', 'key.create', 'key.update', 'key.rotate', 'key.promote', 'key.delete', 'token.create', 'token.revoke', 'settings.update', 'auth.denied', 'auth.limited'];

export async function auditPage(root, {ui, stale}) {
  const cursors = [null];
  let at = 0;
  let limit = 50;
  let events = [];
  let next = null;
  const filters = {action: '', outcome: '', key: '', token: ''};

  const tbody = h('tbody');
  const info = h('p', {class: 'muted count', 'aria-live': 'polite'});
  const newer = h('button', {type: 'button', class: 'secondary small', onclick: () => go(at - 1)}, '← Newer');
  const older = h('button', {type: 'button', class: 'secondary small', onclick: () => go(at + 1)}, 'Older →');
  const actionSel = select([['', 'any'], ...ACTIONS.map((a) => [a, a])], '', {onchange: () => { filters.action = actionSel.value; draw(); }});
  const outcomeSel = select([['', 'any'], ['ok', 'ok'], ['denied', 'denied'], ['limited', 'limited']], '', {onchange: () => { filters.outcome = outcomeSel.value; draw(); }});
  const keyIn = h('input', {type: 'search', placeholder: 'key_…', oninput: () => { filters.key = keyIn.value.trim(); draw(); }});
  const tokIn = h('input', {type: 'search', placeholder: 'tok_…', oninput: () => { filters.token = tokIn.value.trim(); draw(); }});
  const limitSel = select([['25', '25'], ['50', '50'], ['100', '100']], '50', {onchange: () => {
    limit = Number(limitSel.value);
    cursors.length = 1;
    go(0);
  }});

  function shown() {
    return events.filter((e) => (!filters.action || e.action === filters.action)
      && (!filters.outcome || e.outcome === filters.outcome || (filters.outcome === 'limited' && e.action === 'auth.limited'))
      && (!filters.key || (e.keyId || '').includes(filters.key))
      && (!filters.token || (e.tokenId || '').includes(filters.token)));
  }

  function draw() {
    const list = shown();
    tbody.replaceChildren(...list.map((e) => {
      const denied = e.outcome !== 'ok' || e.action === 'auth.limited';
      return h('tr', {class: denied ? 'denied' : null},
        h('td', null, when(e.at)),
        h('td', null, h('span', {class: 'mono'}, e.action)),
        h('td', null, denied ? badge(e.action === 'auth.limited' ? 'limited' : e.outcome, 'denied') : badge(e.outcome, 'ok')),
        h('td', {class: 'mono'}, e.keyId || '—'),
        h('td', {class: 'mono'}, e.tokenId || '—'),
        h('td', null, e.environment ? [e.environment, e.effectiveMode ? h('div', {class: 'sub'}, e.effectiveMode) : null] : '—'),
        h('td', {class: 'mono'}, e.sourceIp || '—'),
        h('td', {class: 'ua', title: e.userAgent || null}, e.userAgent || '—'),
        h('td', {class: 'mono sub'}, e.requestId));
    }));
    replace(info, `Page ${at + 1}: ${list.length} of ${events.length} events shown${next ? '' : ' (the oldest page)'}`);
    newer.disabled = at === 0;
    older.disabled = !next;
  }

  async function go(i) {
    try {
      const r = await api('GET', '/audit', {query: {limit, cursor: cursors[i]}});
      if (stale()) return;
      at = i;
      events = r.events;
      next = r.nextCursor;
      cursors[i + 1] = next;
      cursors.length = next ? i + 2 : i + 1;
      draw();
    } catch (err) {
      ui.error(err);
    }
  }

  replace(root,
    h('div', {class: 'toolbar'}, field('Action', actionSel), field('Outcome', outcomeSel), field('Key', keyIn), field('Token', tokIn), field('Per page', limitSel)),
    h('p', {class: 'muted'}, 'Newest first. The filters apply to the page shown.'),
    h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Audit events'}, h('table', {class: 'list audit'},
      h('caption', {class: 'sr-only'}, 'Audit events, newest first'),
      h('thead', null, h('tr', null, ['When', 'Action', 'Outcome', 'Key', 'Token', 'Env · mode', 'Source', 'User agent', 'Request'].map((t) => h('th', {scope: 'col'}, t)))),
      tbody)),
    h('div', {class: 'pager'}, newer, info, older));
  await go(0);
}
