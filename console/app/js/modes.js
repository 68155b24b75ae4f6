// Modes: the tenant's default per environment, beside the deployment's
// guardrails (read-only), which win over it.

import {api, ApiError, can, lacks} from './api.js';
import {badge, h, replace, select} from './dom.js';

const ENVS = [
  ['development', 'DEV_MODE_FORCED'],
  ['staging', 'STAGING_MODE_FORCED'],
  ['production', 'PROD_MODE_FORCED'],
];

export async function modesPage(root, {ui, stale}) {
  const [modes, guardrails] = await Promise.all([
    api('GET', '/settings/modes'),
    api('GET', '/settings/guardrails').catch((e) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  ]);
  if (stale()) return;
  const writable = can('settings:write');
  const prodMockRefused = guardrails && guardrails.prodMockAllowed === false;

  const sels = ENVS.map(([env]) => {
    const noMock = env === 'production' && prodMockRefused;
    return [env, select([['mock', 'mock', noMock], ['live', 'live']], modes[env], {disabled: !writable, 'aria-label': `Default mode for ${env}`, name: env})];
  });

  function guardrailCell(env, variable) {
    if (!guardrails) return h('td', {class: 'muted'}, 'unknown');
    const forced = guardrails[env];
    if (!forced) return h('td', {class: 'muted'}, 'none');
    // The route reports the outcome; with PROD_MOCK_ALLOWED=false production
    // reads live whether or not PROD_MODE_FORCED says so too.
    const why = env === 'production' && prodMockRefused ? `${variable} or PROD_MOCK_ALLOWED=false` : variable;
    return h('td', null, badge(`forced ${forced}`, forced), h('div', {class: 'sub'}, `by ${why} on this deployment`));
  }

  function effective(env) {
    const forced = guardrails && guardrails[env];
    return forced
      ? h('td', null, badge(forced, forced), h('div', {class: 'sub'}, 'the guardrail wins: the tenant setting and key overrides have no effect'))
      : h('td', null, badge(modes[env], modes[env]), h('div', {class: 'sub'}, 'unless a key overrides it'));
  }

  const table = h('table', {class: 'list modes'},
    h('caption', {class: 'sr-only'}, 'Modes per environment'),
    h('thead', null, h('tr', null, ['Environment', 'Tenant default', 'Guardrail (read-only)', 'Reads are'].map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', null, ENVS.map(([env, variable], i) => h('tr', {'data-env': env},
      h('th', {scope: 'row'}, env), h('td', null, sels[i][1]), guardrailCell(env, variable), effective(env)))));

  const save = h('button', {type: 'submit', disabled: !writable}, 'Save defaults');
  const form = h('form', {class: 'card'}, table, save);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {};
    for (const [env, sel] of sels) if (sel.value !== modes[env]) body[env] = sel.value;
    try {
      await api('PUT', '/settings/modes', {body});
      ui.say('Saved the tenant’s default modes.');
      await modesPage(root, {ui, stale});
    } catch (err) {
      ui.error(err);
    }
  });

  replace(root,
    writable ? null : h('p', {class: 'notice readonly'}, `Read-only: ${lacks('settings:write')}.`),
    guardrails ? null : h('p', {class: 'note'}, 'This server does not report its guardrails yet (GET /settings/guardrails).'),
    prodMockRefused ? h('p', {class: 'notice'}, 'This deployment refuses mock mode in production (PROD_MOCK_ALLOWED=false).') : null,
    form,
    h('p', {class: 'muted'}, 'Resolution, first match wins: the deployment’s guardrail, the key’s override, the tenant’s default.'));
}
