// Members: the tenant's people and their roles. The list, an invitation
// (by GitHub login or by email at the deployment's OpenID provider), a
// role change and a removal. A token grants no role above itself, so the
// roles offered are those whose scopes the signed-in token holds. Removing
// a member, or lowering their role, ends their sessions and everything they
// created (decision 0069): the confirmation lists it, when the signed-in
// token can see it.

import {api, can, lacks, listAll, session} from './api.js';
import {badge, confirmDialog, copyableId, field, fmt, h, nextId, replace, select, when} from './dom.js';
import {madeBy} from './people.js';

export const ROLES = [
  ['owner', 'Owner', 'every scope'],
  ['admin', 'Admin', 'every scope but managing members'],
  ['developer', 'Developer', 'reads values, issues tokens, sees usage and settings'],
  ['viewer', 'Viewer', 'sees keys (never a value), tokens, usage and settings'],
];

/** Each role's scopes (API.md), as the server checks them. */
export const ROLE_SCOPES = {
  owner: ['keys:read', 'keys:write', 'keys:list', 'tokens:read', 'tokens:write', 'settings:read', 'settings:write', 'usage:read', 'members:read', 'members:write'],
  admin: ['keys:read', 'keys:write', 'keys:list', 'tokens:read', 'tokens:write', 'settings:read', 'settings:write', 'usage:read', 'members:read'],
  developer: ['keys:read', 'tokens:write', 'usage:read', 'settings:read'],
  viewer: ['keys:list', 'tokens:read', 'usage:read', 'settings:read'],
};

/** Whether the signed-in token holds every scope of `role`. */
export function canManage(role) {
  return ROLE_SCOPES[role].every((s) => can(s));
}

/** Whether scopes `a` hold every scope of `b` (a :write holds its :read; keys:read holds keys:list). */
export function covers(a, b) {
  const has = (s) => a.includes(s) || (s.endsWith(':read') && a.includes(s.replace(':read', ':write')));
  return b.every((s) => has(s) || (s === 'keys:list' && (has('keys:read'))));
}

const an = (word, start = false) => (/^[aeiou]/.test(word) ? (start ? 'An' : 'an') : (start ? 'A' : 'a'));
const plural = (n, word) => `${fmt.format(n)} ${word}${n === 1 ? '' : 's'}`;

/**
 * What ends with member `m` (their removal or demotion revokes their
 * anchor): their live sessions and what they created, by name, from the
 * token and identity lists; said generically when this token cannot see
 * them.
 */
async function whatEnds(m) {
  if (!m.subject) return [h('p', null, `${m.name} has not signed in yet, so they have no session and have created nothing.`)];
  let made = null;
  if (can('tokens:read')) {
    try {
      const [tokens, identities] = await Promise.all([listAll('/tokens', 'tokens'), listAll('/identities', 'identities')]);
      made = madeBy(m.memberId, tokens, identities);
    } catch {
      made = null;
    }
  }
  if (!made) {
    const why = !can('tokens:read') ? lacks('tokens:read')
      : session.member ? 'you see only what you created yourself' : 'your token sees only what it issued itself';
    return [h('p', {class: 'ends'}, 'Their sessions end, and every token and identity they created is revoked, with the tokens issued from them: '
      + `the applications using them are refused from the next request. (They are not listed here: ${why}.)`)];
  }
  const items = [
    ...made.tokens.map((t) => h('li', null, h('span', {class: 'name'}, t.name), ' ', badge('token', 'token'))),
    ...made.identities.map((i) => h('li', null, h('span', {class: 'name'}, i.name), ' ', badge('identity', 'identity'))),
  ];
  const MAX = 12;
  const parts = [];
  if (made.sessions.length) parts.push(`their ${plural(made.sessions.length, 'live session')}`);
  if (items.length) parts.push(`what they created (${fmt.format(items.length)})`);
  let says = parts.length ? `Revoked at once: ${parts.join(' and ')}.` : 'They have no live session.';
  says += items.length ? ' The applications using them are refused from the next request:' : ' They created no token or identity that is still live.';
  return [
    h('p', {class: 'ends'}, says),
    items.length ? h('ul', {class: 'made'}, items.slice(0, MAX), items.length > MAX ? h('li', {class: 'muted'}, `and ${fmt.format(items.length - MAX)} more`) : null) : null,
    made.exchanged.length ? h('p', null, `${plural(made.exchanged.length, 'token')} exchanged through their identities end${made.exchanged.length === 1 ? 's' : ''} too.`) : null,
  ];
}

function who(m) {
  const handle = m.provider === 'github' ? m.login : m.email;
  return h('span', {class: 'who'}, badge(m.provider === 'github' ? 'GitHub' : 'OpenID', m.provider), ' ', h('span', {class: 'mono'}, handle));
}

export async function membersPage(root, {ui, stale}) {
  const members = await listAll('/members', 'members');
  if (stale()) return;
  const writable = can('members:write');
  const owners = members.filter((m) => m.role === 'owner').length;

  function roleCell(m) {
    const last = m.role === 'owner' && owners === 1;
    if (!writable || !canManage(m.role) || last) {
      return h('td', null, h('span', {class: ['role', m.role]}, m.role),
        last ? h('div', {class: 'hint'}, 'The last owner') : null);
    }
    const options = ROLES.map(([v, label]) => [v, label, !canManage(v)]);
    const pick = select(options, m.role, {'aria-label': `Role of ${m.name}`, class: 'role-select'});
    pick.addEventListener('change', async () => {
      ui.clear();
      const to = pick.value;
      if (!covers(ROLE_SCOPES[to], ROLE_SCOPES[m.role])) {
        // A lower role: what the member made with the old one ends.
        pick.disabled = true;
        const ends = await whatEnds(m);
        pick.disabled = false;
        const ok = await confirmDialog(`Lower ${m.name} to ${to}?`, [
          h('p', null, `${an(to, true)} ${to} holds less than ${an(m.role)} ${m.role}: ${m.name}’s sessions end at once, and so does everything they created. `
            + `They sign in again as ${to}, and make again what that role allows.`),
          ends,
        ], 'Lower role');
        if (!ok || pick.value !== to) {
          pick.value = m.role;
          pick.focus();
          return;
        }
      }
      try {
        await api('PATCH', `/members/${m.memberId}`, {body: {role: to}});
        ui.say(`${m.name} is now ${to}.`);
        await membersPage(root, {ui, stale});
      } catch (err) {
        pick.value = m.role;
        ui.error(err);
      }
    });
    return h('td', null, pick);
  }

  function removeCell(m) {
    if (!writable || !canManage(m.role) || (m.role === 'owner' && owners === 1)) return h('td');
    const button = h('button', {type: 'button', class: 'danger small', 'aria-label': `Remove ${m.name}`}, 'Remove');
    button.addEventListener('click', async () => {
      const handle = m.provider === 'github' ? `GitHub login ${m.login}` : m.email;
      const what = m.name === (m.login || m.email) ? m.role : `${handle}, ${m.role}`;
      button.disabled = true;
      const ends = await whatEnds(m);
      button.disabled = false;
      const ok = await confirmDialog(`Remove ${m.name}?`, [
        h('p', null, `${m.name} (${what}) leaves this tenant, and their invitation is withdrawn.`),
        ends,
        h('p', {class: 'muted'}, 'Keys and the audit log stay; the root token stays the break-glass credential.'),
      ], 'Remove member');
      if (!ok) {
        button.focus();
        return;
      }
      ui.clear();
      try {
        await api('DELETE', `/members/${m.memberId}`);
        ui.say(`${m.name} removed.`);
        await membersPage(root, {ui, stale});
      } catch (err) {
        ui.error(err);
      }
    });
    return h('td', {class: 'actions'}, button);
  }

  function row(m) {
    return h('tr', {'data-member': m.memberId},
      h('td', null, h('div', {class: 'name'}, m.name), h('div', {class: 'sub'}, copyableId(m.memberId, 'member id'))),
      h('td', null, who(m)),
      roleCell(m),
      h('td', null, m.subject ? when(m.lastSignInAt) : badge('invited', 'invited')),
      h('td', {class: 'created'}, when(m.createdAt)),
      removeCell(m));
  }

  function inviteForm() {
    const providerName = nextId('provider');
    let provider = 'github';
    const handle = h('input', {name: 'handle', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'octocat'});
    const handleField = field('GitHub login', handle, 'Bound to the person’s GitHub account at their first sign-in; a later rename does not move it.');
    const setProvider = (p) => {
      provider = p;
      handleField.querySelector('label').textContent = p === 'github' ? 'GitHub login' : 'Email';
      handle.type = p === 'github' ? 'text' : 'email';
      handle.placeholder = p === 'github' ? 'octocat' : 'ana@example.com';
      handleField.querySelector('.hint').textContent = p === 'github'
        ? 'Bound to the person’s GitHub account at their first sign-in; a later rename does not move it.'
        : 'Their email at the company’s OpenID provider; bound to their account at their first sign-in.';
    };
    const radios = [['github', 'GitHub'], ['oidc', 'Company sign-in (OpenID)']].map(([v, label]) => h('label', {class: 'inline'},
      h('input', {type: 'radio', name: providerName, value: v, checked: v === provider, onchange: () => setProvider(v)}), label));
    const grantable = ROLES.filter(([v]) => canManage(v));
    const role = select(grantable.map(([v, label]) => [v, label]), grantable.some(([v]) => v === 'developer') ? 'developer' : grantable[grantable.length - 1]?.[0]);
    const roleHint = grantable.map(([, label, what]) => `${label}: ${what}.`).join(' ');
    const name = h('input', {name: 'name', autocomplete: 'off', maxlength: '100', placeholder: 'Ana Lima'});
    const form = h('form', {class: 'add member', 'aria-label': 'Invite a member'},
      h('fieldset', {class: 'inline'}, h('legend', null, 'Signs in with'), radios),
      h('div', {class: 'row'}, handleField, field('Role', role, roleHint), field('Name (optional)', name, 'Shown in the console and the audit log.')),
      h('button', {type: 'submit'}, 'Invite'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {provider, role: role.value};
      body[provider === 'github' ? 'login' : 'email'] = handle.value.trim();
      if (name.value.trim()) body.name = name.value.trim();
      ui.clear();
      try {
        const m = await api('POST', '/members', {body});
        ui.say(`${m.name} invited as ${m.role}.`);
        await membersPage(root, {ui, stale});
      } catch (err) {
        ui.error(err);
      }
    });
    return form;
  }

  replace(root,
    writable ? null : h('p', {class: 'notice readonly'}, `Read-only: ${lacks('members:write')}, so inviting, changing roles and removing are disabled.`),
    h('p', {class: 'muted intro'}, 'The people of this tenant and their roles. An invitation binds to the person at their first sign-in.'),
    writable ? h('details', {class: 'card', open: members.length === 0}, h('summary', null, 'Invite a member'), inviteForm()) : null,
    members.length
      ? h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Members'}, h('table', {class: 'list members'},
        h('caption', {class: 'sr-only'}, 'Members'),
        h('thead', null, h('tr', null, ['Member', 'Signs in with', 'Role', 'Last sign-in', 'Invited', ''].map((t) => h('th', {scope: 'col'}, t)))),
        h('tbody', null, members.map(row))))
      : h('p', {class: 'empty'}, 'No members yet.'));
}
