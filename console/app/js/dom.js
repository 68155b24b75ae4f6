// DOM helpers. Everything that comes from the server or the user is set as
// text (textContent, attribute values), never parsed as HTML.

/** An element: h('button', {class: 'x', onclick: f, disabled: true}, 'text', child…). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function applyProps(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    } else if (k === 'value' || k === 'checked' || k === 'selected') {
      el[k] = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A fresh id for label/input pairs. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: the label, the control, an optional hint. */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId();
  const hintEl = hint ? h('span', {class: 'hint', id: `${control.id}-hint`}, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {class: 'field'}, h('label', {for: control.id}, label), control, hintEl);
}

export function select(options, value, props = {}) {
  return h('select', props, options.map(([v, label, disabled]) => h('option', {value: v, selected: v === value, disabled}, label)));
}

/** A modal confirmation; resolves true when confirmed. `message`: text, or nodes (paragraphs, a list). */
export function confirmDialog(title, message, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const dlg = h('dialog', {class: 'confirm', 'aria-labelledby': 'dlg-title'});
    const done = (ok) => {
      dlg.close();
      dlg.remove();
      resolve(ok);
    };
    append(dlg, [
      h('h2', {id: 'dlg-title'}, title),
      typeof message === 'string' ? h('p', null, message) : h('div', {class: 'message'}, message),
      h('div', {class: 'actions'},
        h('button', {type: 'button', class: 'secondary', onclick: () => done(false)}, 'Cancel'),
        h('button', {type: 'button', class: 'danger', onclick: () => done(true)}, confirmLabel)),
    ]);
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

const rtf = new Intl.RelativeTimeFormat('en', {numeric: 'auto'});

/** "in 3 days", "5 minutes ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return 'never';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 60) return rtf.format(s, 'second');
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 86400 * 60) return rtf.format(Math.round(s / 86400), 'day');
  if (abs < 86400 * 730) return rtf.format(Math.round(s / (86400 * 30)), 'month');
  return rtf.format(Math.round(s / (86400 * 365)), 'year');
}

/** "2026-11-26 14:34 UTC". */
export function absolute(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/:\d\dZ$/, ' UTC');
}

/** A time as relative text with the absolute one beside it. */
export function when(iso) {
  if (!iso) return h('span', {class: 'muted'}, 'never');
  return h('time', {datetime: iso, title: iso}, relative(iso), h('span', {class: 'abs'}, absolute(iso)));
}

export function badge(text, kind = '') {
  return h('span', {class: ['badge', kind]}, text);
}

export const fmt = new Intl.NumberFormat('en');

/** `key_4Xlk…ZTIO`: an id cut to its prefix, four characters, an ellipsis and its last four. */
export function shortId(id) {
  const s = String(id);
  const p = s.indexOf('_') + 1;
  return s.length <= p + 11 ? s : `${s.slice(0, p + 4)}…${s.slice(-4)}`;
}

let copyLive = null;

/**
 * An id shown short, in full in its tooltip; a click copies the whole id
 * (announced to screen readers; shown by hand when there is no clipboard).
 */
export function copyableId(id, what = 'id') {
  // The name starts with the text shown (WCAG 2.5.3), then says what a click does.
  const short = shortId(id);
  const btn = h('button', {type: 'button', class: 'id', title: `${id} (click to copy)`, 'aria-label': `${short}: copy the ${what} ${id}`, 'data-id': id}, short);
  btn.addEventListener('click', async () => {
    if (!copyLive) {
      copyLive = h('div', {class: 'sr-only', role: 'status', 'aria-live': 'polite'});
      document.body.append(copyLive);
    }
    let said;
    try {
      await navigator.clipboard.writeText(id);
      said = `Copied ${id}`;
      btn.classList.add('copied');
      setTimeout(() => btn.classList.remove('copied'), 1500);
    } catch {
      said = `The clipboard is not available: ${id}`;
      window.prompt('Copy the id', id);
    }
    replace(copyLive, said);
  });
  return btn;
}
