// Usage: reads per key and per token, the tenant's quota, and charts of
// daily reads (GET /usage/daily): the tenant's total, then the keys and the
// tokens with the most reads. Each chart is an SVG image whose label says
// what it shows (total, today, busiest day); the numbers behind the charts
// are tables too, under "The numbers".

import {api, ApiError} from './api.js';
import {absolute, fmt, h, relative, replace, svg, when} from './dom.js';

const RANGES = [['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']];
const TOP = 6;
const DAY_MS = 86400 * 1000;

const sum = (a) => a.reduce((x, y) => x + y, 0);
const reads = (n) => `${fmt.format(n)} read${n === 1 ? '' : 's'}`;

/** What a chart shows, in words: its image label and its caption. */
export function summary(days, values) {
  const last = days.length - 1;
  const max = Math.max(0, ...values);
  const busiest = values.indexOf(max);
  return {
    total: sum(values),
    today: values[last] || 0,
    text: `${reads(sum(values))} from ${days[0]} to ${days[last]}; ${reads(values[last] || 0)} on ${days[last]} (today)`
      + (max > 0 ? `; the most, ${fmt.format(max)}, on ${days[busiest]}` : ''),
  };
}

/** A bar chart of `values` over `days`, as SVG (attributes only, no inline style). */
export function barChart(days, values, label, small = false) {
  // Drawn near the size it is shown at (a full card, or a quarter of one
  // at 1280 px), so that its text stays at the page's size.
  const w = small ? 250 : 1160;
  const hgt = small ? 60 : 130;
  const pad = small ? 22 : 34;
  const max = Math.max(1, ...values);
  const bw = (w - pad) / Math.max(1, values.length);
  const short = (d) => (small ? d.slice(5) : d);
  return svg('svg', {viewBox: `0 0 ${w} ${hgt + 18}`, role: 'img', 'aria-label': `${label}: ${summary(days, values).text}.`, class: ['chart', small && 'small'].filter(Boolean).join(' ')},
    svg('line', {x1: pad, y1: hgt + 0.5, x2: w, y2: hgt + 0.5, class: 'axis'}),
    svg('line', {x1: pad, y1: 8.5, x2: w, y2: 8.5, class: 'grid'}),
    svg('text', {x: pad - 4, y: 12, class: 'tick end'}, fmt.format(max)),
    svg('text', {x: pad - 4, y: hgt, class: 'tick end'}, '0'),
    values.map((v, i) => {
      const bh = v ? Math.max(2, Math.round((v / max) * (hgt - 8))) : 0;
      return svg('rect', {x: pad + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2), height: bh,
        class: i === values.length - 1 ? 'bar today' : 'bar', 'data-day': days[i], 'data-reads': v},
      svg('title', null, `${days[i]}: ${reads(v)}`));
    }),
    svg('text', {x: pad, y: hgt + 15, class: 'tick'}, short(days[0] || '')),
    svg('text', {x: w, y: hgt + 15, class: 'tick end'}, `${short(days[days.length - 1] || '')} (today)`));
}

/** A figure: caption (name, total, today), the chart. */
function figure(kind, id, name, days, values, small) {
  const s = summary(days, values);
  return h('figure', {class: 'daily', 'data-kind': kind, 'data-id': id, 'data-today': s.today, 'data-total': s.total},
    h('figcaption', null, h('span', {class: 'name'}, name), small ? h('br') : ' ',
      h('span', {class: 'today'}, `${reads(s.today)} today`), h('span', {class: 'muted'}, ` · ${fmt.format(s.total)} in ${days.length} days`)),
    barChart(days, values, `Daily reads, ${name}`, small));
}

/** The numbers behind a group of charts: a row a day, newest first. */
function numbers(caption, days, series) {
  return h('details', {class: 'numbers'}, h('summary', null, `The numbers: ${caption}`),
    h('div', {class: 'scroll'}, h('table', {class: 'list compact'},
      h('caption', {class: 'sr-only'}, `Daily reads: ${caption}, newest day first`),
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Day'), series.map(([name]) => h('th', {scope: 'col', class: 'num'}, name)))),
      h('tbody', null, days.map((_, j) => days.length - 1 - j).map((i) => h('tr', null,
        h('th', {scope: 'row', class: 'mono'}, days[i]),
        series.map(([, values]) => h('td', {class: 'num'}, fmt.format(values[i])))))))));
}

function group(title, kind, rows, days, nameOf) {
  const busy = rows.map((r) => ({...r, n: sum(r.reads)})).filter((r) => r.n > 0).sort((a, b) => b.n - a.n);
  const shown = busy.slice(0, TOP);
  const id = `daily-${kind}`;
  return h('section', {'aria-labelledby': id},
    h('h3', {id}, title),
    shown.length
      ? [h('div', {class: 'grid-charts'}, shown.map((r) => figure(kind, r[`${kind}Id`], nameOf(r), days, r.reads, true))),
        busy.length > TOP ? h('p', {class: 'muted'}, `${busy.length - TOP} more with reads in this range; the tables below list every ${kind}.`) : null,
        numbers(title.toLowerCase(), days, shown.map((r) => [nameOf(r), r.reads]))]
      : h('p', {class: 'empty'}, 'No reads in this range.'));
}

/** The daily-usage card's content for one answer of GET /usage/daily. */
function dailyCharts(daily) {
  const {days} = daily;
  return [
    figure('total', 'tenant', 'Tenant total', days, daily.total, false),
    numbers('tenant total', days, [['Reads', daily.total]]),
    h('div', {class: 'cols'},
      group('Per key', 'key', daily.keys, days, (k) => k.name || `${k.keyId} (deleted)`),
      group('Per token', 'token', daily.tokens, days, (t) => t.name || `${t.tokenId} (purged)`)),
  ];
}

async function fetchDaily(range, lastDay) {
  let query;
  if (range !== '30' && lastDay) {
    // The server's today is the last day of its previous answer.
    const to = Date.parse(`${lastDay}T00:00:00Z`);
    query = {from: new Date(to - (Number(range) - 1) * DAY_MS).toISOString().slice(0, 10), to: lastDay};
  }
  try {
    return await api('GET', '/usage/daily', {query});
  } catch (e) {
    if (e instanceof ApiError && e.missingRoute) return null;
    throw e;
  }
}

export async function usagePage(root, {ui, stale}) {
  const [usage, daily] = await Promise.all([api('GET', '/usage'), fetchDaily('30')]);
  if (stale()) return;

  let quota;
  if (!('quota' in usage)) {
    quota = h('p', {class: 'note'}, 'This server does not report a monthly quota yet.');
  } else if (usage.quota === null) {
    quota = h('p', null, 'No monthly quota: reads are unlimited.');
  } else {
    const q = usage.quota;
    const pct = Math.min(100, Math.round((q.used / Math.max(1, q.readsPerMonth)) * 100));
    quota = h('div', {class: 'quota'},
      h('p', null, `${fmt.format(q.used)} of ${fmt.format(q.readsPerMonth)} reads this month (${pct} %). Resets `,
        h('time', {datetime: q.resetsAt}, `${relative(q.resetsAt)} (${absolute(q.resetsAt)})`), '.'),
      h('progress', {max: q.readsPerMonth, value: q.used, 'aria-label': 'Monthly quota used'}));
  }

  const dailyBody = h('div', {class: 'daily-body', 'aria-live': 'polite'});
  let rangeSel = null;
  if (!daily) {
    replace(dailyBody, h('p', {class: 'note'}, 'This server does not serve daily usage yet (GET /usage/daily).'));
  } else {
    let lastDay = daily.days[daily.days.length - 1];
    replace(dailyBody, dailyCharts(daily));
    rangeSel = h('select', {'aria-label': 'Range of the daily charts', onchange: async () => {
      try {
        const d = await fetchDaily(rangeSel.value, lastDay);
        if (stale() || !d) return;
        lastDay = d.days[d.days.length - 1];
        replace(dailyBody, dailyCharts(d));
      } catch (err) {
        ui.error(err);
      }
    }}, RANGES.map(([v, l]) => h('option', {value: v, selected: v === '30'}, l)));
  }

  const keyRows = [...usage.keys].sort((a, b) => b.retrievals - a.retrievals);
  // Tokens without a read are counted, not listed: a tenant may have
  // thousands (the tokens page filters the unused ones).
  const tokenRows = usage.tokens.filter((t) => t.uses > 0).sort((a, b) => b.uses - a.uses);
  const unread = usage.tokens.length - tokenRows.length;
  replace(root,
    h('section', {class: 'card', 'aria-labelledby': 'quota-title'}, h('h2', {id: 'quota-title'}, 'Monthly quota'), quota),
    h('section', {class: 'card', 'aria-labelledby': 'daily-title'},
      h('div', {class: 'card-head'}, h('h2', {id: 'daily-title'}, 'Daily reads (UTC days)'), rangeSel),
      dailyBody),
    h('div', {class: 'cols'},
      h('section', {'aria-labelledby': 'ukeys-title'}, h('h2', {id: 'ukeys-title'}, 'Reads per key, all time'),
        table(['Key', 'Reads', 'Last used'], keyRows.map((k) => [h('span', {class: 'name'}, k.name), fmt.format(k.retrievals), when(k.lastUsedAt)]))),
      h('section', {'aria-labelledby': 'utokens-title'}, h('h2', {id: 'utokens-title'}, 'Reads per token, all time'),
        tokenRows.length || !unread ? table(['Token', 'Reads', 'Last used'], tokenRows.map((t) => [h('span', {class: 'name'}, t.name), fmt.format(t.uses), when(t.lastUsedAt)])) : null,
        unread ? h('p', {class: 'muted'}, tokenRows.length
          ? `${fmt.format(unread)} more token${unread === 1 ? ' has' : 's have'} read nothing (not listed).`
          : `None of the ${fmt.format(unread)} tokens has read a value yet.`) : null)));
}

function table(headers, rows) {
  if (!rows.length) return h('p', {class: 'empty'}, 'Nothing yet.');
  return h('table', {class: 'list compact'},
    h('thead', null, h('tr', null, headers.map((t, i) => h('th', {scope: 'col', class: i === 1 ? 'num' : null}, t)))),
    h('tbody', null, rows.map((cells) => h('tr', null, cells.map((c, i) => h('td', {class: i === 1 ? 'num' : null}, c))))));
}
