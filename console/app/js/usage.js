// Usage: reads per key and per token, the tenant's quota, and charts of
// daily reads (GET /usage/daily) when the server serves them.

import {api, ApiError} from './api.js';
import {fmt, h, replace, svg, when} from './dom.js';

/** A bar chart of `values` over `days`, as SVG (attributes only, no inline style). */
export function barChart(days, values, label) {
  const w = 720;
  const hgt = 160;
  const pad = 28;
  const max = Math.max(1, ...values);
  const bw = (w - pad) / Math.max(1, values.length);
  const chart = svg('svg', {viewBox: `0 0 ${w} ${hgt + 20}`, role: 'img', 'aria-label': label, class: 'chart'},
    svg('title', null, label),
    svg('line', {x1: pad, y1: hgt, x2: w, y2: hgt, class: 'axis'}),
    svg('text', {x: 0, y: 12, class: 'tick'}, fmt.format(max)),
    svg('text', {x: 0, y: hgt, class: 'tick'}, '0'),
    values.map((v, i) => {
      const bh = Math.round((v / max) * (hgt - 16));
      return svg('rect', {x: pad + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2), height: bh, class: 'bar'},
        svg('title', null, `${days[i]}: ${fmt.format(v)} reads`));
    }),
    svg('text', {x: pad, y: hgt + 16, class: 'tick'}, days[0] || ''),
    svg('text', {x: w, y: hgt + 16, class: 'tick end'}, days[days.length - 1] || ''));
  return chart;
}

export async function usagePage(root, {stale}) {
  const [usage, daily] = await Promise.all([
    api('GET', '/usage'),
    api('GET', '/usage/daily').catch((e) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  ]);
  if (stale()) return;

  let quota;
  if (!('quota' in usage)) {
    quota = h('p', {class: 'note'}, 'This server does not report a monthly quota yet.');
  } else if (usage.quota === null) {
    quota = h('p', null, 'No monthly quota: reads are unlimited.');
  } else {
    const q = usage.quota;
    const pct = Math.min(100, Math.round((q.used / Math.max(1, q.readsPerMonth)) * 100));
    quota = h('div', null,
      h('p', null, `${fmt.format(q.used)} of ${fmt.format(q.readsPerMonth)} reads this month (${pct} %); resets `, when(q.resetsAt), '.'),
      h('progress', {max: q.readsPerMonth, value: q.used, 'aria-label': 'Monthly quota used'}));
  }

  let charts;
  if (!daily) {
    charts = h('p', {class: 'note'}, 'This server does not serve daily usage yet (GET /usage/daily).');
  } else {
    const top = [...daily.keys].sort((a, b) => sum(b.reads) - sum(a.reads)).slice(0, 5);
    charts = h('div', null,
      h('figure', null, barChart(daily.days, daily.total, 'Reads per day, all keys'), h('figcaption', null, `All keys: ${fmt.format(sum(daily.total))} reads, ${daily.days[0]} to ${daily.days[daily.days.length - 1]}`)),
      top.map((k) => h('figure', null, barChart(daily.days, k.reads, `Reads per day of ${k.name || k.keyId}`), h('figcaption', null, `${k.name || `${k.keyId} (deleted)`}: ${fmt.format(sum(k.reads))} reads`))));
  }

  const keyRows = [...usage.keys].sort((a, b) => b.retrievals - a.retrievals);
  const tokenRows = [...usage.tokens].sort((a, b) => b.uses - a.uses);
  replace(root,
    h('section', {class: 'card', 'aria-labelledby': 'quota-title'}, h('h2', {id: 'quota-title'}, 'Quota'), quota),
    h('section', {class: 'card', 'aria-labelledby': 'daily-title'}, h('h2', {id: 'daily-title'}, 'Daily reads'), charts),
    h('div', {class: 'cols'},
      h('section', {'aria-labelledby': 'ukeys-title'}, h('h2', {id: 'ukeys-title'}, 'Reads per key'),
        table(['Key', 'Reads', 'Last used'], keyRows.map((k) => [h('span', {class: 'name'}, k.name), fmt.format(k.retrievals), when(k.lastUsedAt)]))),
      h('section', {'aria-labelledby': 'utokens-title'}, h('h2', {id: 'utokens-title'}, 'Reads per token'),
        table(['Token', 'Reads', 'Last used'], tokenRows.map((t) => [h('span', {class: 'name'}, t.name), fmt.format(t.uses), when(t.lastUsedAt)])))));
}

function sum(a) {
  return a.reduce((x, y) => x + y, 0);
}

function table(headers, rows) {
  if (!rows.length) return h('p', {class: 'empty'}, 'Nothing yet.');
  return h('table', {class: 'list compact'},
    h('thead', null, h('tr', null, headers.map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', null, rows.map((cells) => h('tr', null, cells.map((c, i) => h('td', {class: i === 1 ? 'num' : null}, c))))));
}
