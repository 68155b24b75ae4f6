// Keys: list, add, rename, rotate (with the version panel), overrides per
// environment, delete. A key's value is only ever typed into a masked field;
// it is cleared from the field and dropped before the request goes out, and
// the page shows previews only.

import {api, ApiError, can, lacks, listAll, session} from './api.js';
import {badge, confirmDialog, field, fmt, h, replace, select, when} from './dom.js';

const ENVS = [['development', 'dev'], ['staging', 'staging'], ['production', 'prod']];
const TYPES = ['openai', 'anthropic', 'google', 'groq', 'mistral', 'cohere'];

/** A masked value field; `take()` empties it and hands over its value once. */
function valueInput(label) {
  const input = h('input', {type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, maxlength: 8192});
  const wrapper = field(label, input, 'Masked. Cleared from the page as soon as you submit.');
  return {el: wrapper, take() {
    const v = input.value;
    input.value = '';
    return v;
  }};
}

function overrideBadges(overrides) {
  const entries = ENVS.filter(([env]) => overrides && overrides[env]);
  if (!entries.length) return h('span', {class: 'muted'}, 'none');
  return entries.map(([env, short]) => badge(`${short}: ${overrides[env]}`, overrides[env]));
}

export async function keysPage(root, {ui, stale, open = null}) {
  const writable = can('keys:write');
  const restricted = session.self && session.self.keyIds;
  const [keys, usage] = await Promise.all([
    listAll('/keys', 'keys'),
    can('usage:read') ? api('GET', '/usage').catch(() => null) : Promise.resolve(null),
  ]);
  if (stale()) return;
  const reads = new Map((usage ? usage.keys : []).map((k) => [k.keyId, k.retrievals]));

  /**
   * Runs a change; its message on success, then the page afresh (with the
   * key's details open again when `reopen` names it); the server's error
   * otherwise.
   */
  async function act(run, cleanup = () => {}, reopen = null) {
    try {
      ui.say(await run());
      await keysPage(root, {ui, stale, open: reopen});
    } catch (err) {
      ui.error(err);
    } finally {
      cleanup();
    }
  }

  const detail = h('section', {class: 'detail', 'aria-live': 'polite'});
  const tbody = h('tbody');
  const table = h('table', {class: 'list'},
    h('caption', {class: 'sr-only'}, 'Keys'),
    h('thead', null, h('tr', null, ['Name', 'Type', 'Preview', 'Last used', 'Reads', 'Overrides', ''].map((t) => h('th', {scope: 'col', class: t === 'Reads' ? 'num' : null}, t)))),
    tbody);
  for (const k of keys) {
    tbody.append(h('tr', {'data-key': k.keyId},
      h('td', null, h('span', {class: 'name'}, k.name), h('div', {class: 'sub mono'}, k.keyId)),
      h('td', null, badge(k.llmType, 'type')),
      h('td', null, h('span', {class: 'mono'}, k.preview), k.version ? h('div', {class: 'sub'}, `version ${k.version}`) : null),
      h('td', null, when(k.lastUsedAt)),
      h('td', {class: 'num'}, reads.has(k.keyId) ? fmt.format(reads.get(k.keyId)) : '—'),
      h('td', null, overrideBadges(k.modeOverrides)),
      h('td', {class: 'actions'}, h('button', {type: 'button', class: 'secondary small', 'aria-label': `${writable ? 'Manage' : 'Details'} ${k.name}`,
        onclick: () => showDetail(k)}, writable ? 'Manage' : 'Details'))));
  }

  const reasons = [];
  if (!writable) reasons.push(`Read-only: ${lacks('keys:write')}, so adding, renaming, rotating, overrides and deleting are disabled.`);
  else if (restricted) reasons.push('This token is limited to some keys (keyIds), so it cannot add keys.');

  replace(root,
    reasons.map((r) => h('p', {class: 'notice readonly'}, r)),
    writable && !restricted ? h('details', {class: 'card', open: keys.length === 0}, h('summary', null, 'Add a key'), addForm()) : null,
    keys.length ? table : h('p', {class: 'empty'}, 'No keys yet.'),
    detail);
  const reopened = open && keys.find((k) => k.keyId === open);
  if (reopened) await showDetail(reopened);

  function addForm() {
    const name = h('input', {type: 'text', required: true, maxlength: 100, autocomplete: 'off'});
    const type = h('input', {type: 'text', required: true, list: 'llm-types', pattern: '[a-z0-9][a-z0-9\\-]{0,31}', autocomplete: 'off', value: 'openai'});
    const value = valueInput('Value');
    const overrides = ENVS.map(([env, short]) => [env, select([['', 'tenant default'], ['mock', 'mock'], ['live', 'live']], '', {'aria-label': `Override for ${env}`, name: short})]);
    const form = h('form', {class: 'add', 'aria-label': 'Add a key'},
      h('div', {class: 'row'},
        field('Name', name),
        field('Type', type, 'openai, anthropic, google, groq, …'),
        h('datalist', {id: 'llm-types'}, TYPES.map((t) => h('option', {value: t})))),
      value.el,
      h('fieldset', {class: 'row'}, h('legend', null, 'Mode overrides (optional)'),
        overrides.map(([env, sel]) => h('label', {class: 'inline'}, `${env} `, sel))),
      h('button', {type: 'submit'}, 'Add key'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {name: name.value, llmType: type.value.trim(), value: value.take()};
      const mo = {};
      for (const [env, sel] of overrides) if (sel.value) mo[env] = sel.value;
      if (Object.keys(mo).length) body.modeOverrides = mo;
      await act(async () => {
        const created = await api('POST', '/keys', {body});
        form.reset();
        return `Added ${created.name} (${created.preview}).`;
      }, () => { body.value = null; });
    });
    return form;
  }

  async function showDetail(k) {
    ui.clear();
    replace(detail, h('h2', {id: 'detail-title'}, k.name), h('p', {class: 'muted mono'}, k.keyId));
    detail.setAttribute('aria-labelledby', 'detail-title');
    const cards = h('div', {class: 'cards'});
    detail.append(cards);
    if (writable) {
      cards.append(renameCard(k), overridesCard(k));
    }
    const versions = h('div', {class: 'card versions'}, h('h3', null, 'Versions'), h('p', {class: 'muted'}, 'Loading…'));
    cards.append(versions);
    if (writable) cards.append(deleteCard(k));
    detail.scrollIntoView({block: 'nearest'});
    await renderVersions(k, versions);
  }

  function renameCard(k) {
    const input = h('input', {type: 'text', required: true, maxlength: 100, value: k.name});
    const form = h('form', {class: 'card'}, h('h3', null, 'Rename'), field('New name', input), h('button', {type: 'submit'}, 'Rename'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      await act(async () => {
        await api('PATCH', `/keys/${encodeURIComponent(k.keyId)}`, {body: {name: input.value}});
        return `Renamed to ${input.value}.`;
      }, undefined, k.keyId);
    });
    return form;
  }

  function overridesCard(k) {
    const sels = ENVS.map(([env]) => [env, select([['', 'tenant default'], ['mock', 'mock'], ['live', 'live']], (k.modeOverrides || {})[env] || '', {name: env})]);
    const form = h('form', {class: 'card'}, h('h3', null, 'Mode override per environment'),
      sels.map(([env, sel]) => field(env, sel)),
      h('button', {type: 'submit'}, 'Save overrides'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const modeOverrides = {};
      for (const [env, sel] of sels) modeOverrides[env] = sel.value || null;
      await act(async () => {
        await api('PATCH', `/keys/${encodeURIComponent(k.keyId)}`, {body: {modeOverrides}});
        return `Saved the overrides of ${k.name}.`;
      }, undefined, k.keyId);
    });
    return form;
  }

  function deleteCard(k) {
    return h('div', {class: 'card danger-zone'}, h('h3', null, 'Delete'),
      h('p', {class: 'muted'}, 'Deleting destroys the stored value; reads answer 404 afterwards.'),
      h('button', {type: 'button', class: 'danger', onclick: async () => {
        const ok = await confirmDialog('Delete key?', `Delete “${k.name}” (${k.keyId})? Its value is destroyed and cannot be read again.`, 'Delete key');
        if (!ok) return;
        await act(async () => {
          await api('DELETE', `/keys/${encodeURIComponent(k.keyId)}`);
          return `Deleted ${k.name}.`;
        });
      }}, 'Delete key…'));
  }

  async function renderVersions(k, card) {
    let versions = null;
    try {
      versions = (await api('GET', `/keys/${encodeURIComponent(k.keyId)}/versions`)).versions;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) {
        ui.error(err);
      }
    }
    const supported = versions !== null;
    replace(card, h('h3', null, 'Versions'));
    if (!supported) {
      card.append(h('p', {class: 'note'}, 'This server does not keep key versions yet: a rotation replaces the value at once.'));
    } else {
      const hasPending = versions.some((v) => v.stage === 'pending');
      card.append(h('table', {class: 'list compact'},
        h('thead', null, h('tr', null, ['Version', 'Stage', 'Preview', 'Created', 'Retires'].map((t) => h('th', {scope: 'col'}, t)))),
        h('tbody', null, versions.map((v) => h('tr', null,
          h('td', null, String(v.version)), h('td', null, badge(v.stage, v.stage)),
          h('td', {class: 'mono'}, v.preview || '…'), h('td', null, when(v.createdAt)), h('td', null, v.retiresAt ? when(v.retiresAt) : '—'))))));
      if (writable && hasPending) card.append(promoteForm(k));
    }
    if (writable) card.append(rotateForm(k, supported));
  }

  function previousValidForSelect() {
    return select([['0', 'at once'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days']], '0');
  }

  function promoteForm(k) {
    const pvf = previousValidForSelect();
    const form = h('form', {class: 'sub-form'}, h('h4', null, 'Promote the pending version'),
      field('Keep the current version readable for', pvf), h('button', {type: 'submit'}, 'Promote'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      await act(async () => {
        const r = await api('POST', `/keys/${encodeURIComponent(k.keyId)}/promote`, {body: {previousValidFor: Number(pvf.value)}});
        return r && r.version ? `Promoted version ${r.version} of ${k.name} (${r.preview}): it is current now.` : `Promoted the pending version of ${k.name}.`;
      }, undefined, k.keyId);
    });
    return form;
  }

  function rotateForm(k, versioned) {
    const value = valueInput('New value');
    const stage = select([['current', 'current at once'], ['pending', 'pending (promote later)']], 'current');
    const pvf = previousValidForSelect();
    // The window of the version that stops being current: it applies when a
    // version becomes current (here, or at promotion), not to a pending one.
    const pvfField = field('Keep the previous version readable for', pvf);
    stage.addEventListener('change', () => { pvfField.hidden = stage.value === 'pending'; });
    const form = h('form', {class: 'sub-form'}, h('h4', null, 'Rotate'), value.el,
      versioned ? h('div', {class: 'row'}, field('New version becomes', stage), pvfField) : null,
      h('button', {type: 'submit'}, 'Rotate'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {value: value.take()};
      if (versioned) {
        body.stage = stage.value;
        if (stage.value === 'current') body.previousValidFor = Number(pvf.value);
      }
      await act(async () => {
        const r = await api('PUT', `/keys/${encodeURIComponent(k.keyId)}/value`, {body});
        return body.stage === 'pending'
          ? `Stored a pending version of ${r.name}; ${r.preview} stays current until you promote it.`
          : `Rotated ${r.name}: now ${r.preview}.`;
      }, () => { body.value = null; }, k.keyId);
    });
    return form;
  }
}

