// Identities: the trust rules through which a CI job or a cloud workload
// exchanges the credential it already holds (an OIDC token, an AWS role) for
// a short-lived token. The list, creation (GitHub Actions, any OIDC issuer,
// an AWS IAM role) and deletion, whose confirmation says that every token
// issued through the identity stops working.

import {ALL_SCOPES, api, ApiError, can, lacks, listAll, session} from './api.js';
import {badge, confirmDialog, copyableId, field, h, nextId, replace, select, when} from './dom.js';
import {memberNames, peopleOf} from './people.js';

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const TTL_PRESETS = [['300', '5 minutes'], ['900', '15 minutes'], ['1800', '30 minutes'], ['3600', '1 hour']];
/** An identity may hold these; an exchange never grants tokens:write. People's scopes are left out: a workload manages no members. */
const SCOPES = ['keys:read', 'keys:list', ...ALL_SCOPES.filter((s) => s !== 'keys:read' && !s.startsWith('members:'))];
const KINDS = [
  ['github', 'GitHub Actions'],
  ['oidc', 'Other OIDC issuer'],
  ['aws', 'AWS IAM role'],
];


/**
 * The `sub` GitHub Actions gives a job of OWNER/REPO: one that deploys to
 * an environment, or one that runs on a ref (a branch name means
 * `refs/heads/NAME`; a full ref such as `refs/tags/v1` stays as it is).
 */
export function githubSubject(owner, repo, on, value) {
  const base = `repo:${owner}/${repo}`;
  if (on === 'environment') return `${base}:environment:${value}`;
  return `${base}:ref:${value.startsWith('refs/') ? value : `refs/heads/${value}`}`;
}

/**
 * Bound claims from lines of `name=value`; a name on several lines allows
 * any of its values. Returns {claims} or {problem}.
 */
export function parseClaims(text) {
  const claims = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    const name = eq > 0 ? line.slice(0, eq).trim() : '';
    const value = eq > 0 ? line.slice(eq + 1).trim() : '';
    if (!name || !value) return {problem: `Bound claims, line ${i + 1}: write name=value.`};
    (claims[name] ||= []).push(value);
  }
  for (const [k, v] of Object.entries(claims)) if (v.length === 1) claims[k] = v[0];
  return {claims};
}

function kindOf(i) {
  if (i.kind === 'aws') return ['AWS IAM', 'aws'];
  return i.issuer === GITHUB_ISSUER ? ['GitHub Actions', 'github'] : ['OIDC', 'oidc'];
}

/** Text that may break after each `:` and `/` (a subject, an issuer), never inside a word. */
function breakable(text, cls = 'mono') {
  return h('span', {class: cls}, String(text).split(/(?<=[:/])/).flatMap((part, n) => (n ? [h('wbr'), part] : [part])));
}

function ttlText(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** The rule an identity trusts, as label/value pairs. */
function trusts(i) {
  const pair = (label, ...value) => [h('dt', null, label), h('dd', null, ...value)];
  if (i.kind === 'aws') {
    return h('dl', {class: 'rule'},
      pair('Account', h('span', {class: 'mono'}, i.awsAccountId)),
      pair('Role', h('span', {class: 'mono'}, i.awsRoleName)));
  }
  const claims = Object.entries(i.boundClaims || {});
  return h('dl', {class: 'rule'},
    i.issuer === GITHUB_ISSUER ? null : pair('Issuer', breakable(i.issuer)),
    pair('Subject', breakable(i.subject), i.subjectMatch === 'glob' ? badge('pattern', 'glob') : null),
    pair('Audience', breakable(i.audience)),
    claims.length ? pair('Claims', claims.map(([k, v]) => h('div', {class: 'mono claim'}, `${k} = `,
      [].concat(v).map((x, n) => [n ? ' | ' : null, h('span', {class: 'nowrap'}, x)])))) : null);
}

export async function identitiesPage(root, {ui, stale}) {
  let identities;
  try {
    identities = await listAll('/identities', 'identities');
  } catch (e) {
    if (!(e instanceof ApiError) || !e.missingRoute) throw e;
    replace(root, h('p', {class: 'notice'}, 'This server does not serve workload identities yet.'));
    return;
  }
  const keys = can('keys:list') ? await listAll('/keys', 'keys').catch(() => []) : [];
  if (stale()) return;
  const writable = can('tokens:write');
  const keyNames = new Map(keys.map((k) => [k.keyId, k.name]));
  // The creators' names, and the live tokens issued through each identity,
  // come from the token list: fetched after the table is drawn (a tenant may
  // have thousands of tokens).
  // An identity a person created from a session names them (its creator
  // is their anchor, a token nobody holds).
  let tokens = null;
  let people = new Map();
  const creators = new Map();

  function creatorCell(i) {
    const cell = h('td', {class: 'created', 'data-creator': i.createdBy});
    const person = people.get(i.createdBy);
    if (person) {
      const mine = session.member && person.memberId === session.member.memberId;
      replace(cell, when(i.createdAt),
        h('div', {class: 'who-made'}, 'created by ', h('span', {class: 'name'}, person.name), ' ', badge('person', 'person'), mine ? badge('you', 'you') : null));
    } else {
      const self = i.createdBy === session.tokenId;
      const t = tokens && tokens.find((x) => x.tokenId === i.createdBy);
      const name = self && session.self ? session.self.name : t && t.name;
      replace(cell, when(i.createdAt),
        h('div', {class: 'who-made'}, 'created by ', name ? h('span', {class: 'name'}, name) : null, self ? badge('you', 'you') : null, ' ', copyableId(i.createdBy, 'token id')));
    }
    creators.set(i.identityId, cell);
    return cell;
  }

  function row(i) {
    const [kind, cls] = kindOf(i);
    return h('tr', {'data-identity': i.identityId},
      h('td', {class: 'identity'}, h('span', {class: 'name'}, i.name),
        h('div', null, badge(kind, `kind ${cls}`)), h('div', null, copyableId(i.identityId, 'identity id'))),
      h('td', {class: 'trusts'}, trusts(i)),
      h('td', null, i.scopes.map((s) => badge(s, s.endsWith(':write') ? 'write' : 'read'))),
      h('td', {class: 'keys'}, i.keyIds ? h('span', {title: i.keyIds.join(', ')}, i.keyIds.map((k) => keyNames.get(k) || k).join(', ')) : h('span', {class: 'muted'}, 'all keys')),
      h('td', {class: 'num'}, ttlText(i.tokenTtl)),
      creatorCell(i),
      h('td', {class: 'actions'}, writable
        ? h('button', {type: 'button', class: 'danger small', 'aria-label': `Delete ${i.name}`, onclick: () => remove(i)}, 'Delete')
        : null));
  }

  async function remove(i) {
    const now = Date.now();
    const live = tokens ? tokens.filter((t) => t.identityId === i.identityId && !t.revokedAt && Date.parse(t.expiresAt) > now).length : 0;
    const msg = `Delete “${i.name}”? Every token issued through it stops working at once${live ? ` (${live} live now)` : ''}, and no workload can exchange through it again.`;
    if (!(await confirmDialog('Delete identity?', msg, 'Delete identity'))) return;
    try {
      await api('DELETE', `/identities/${encodeURIComponent(i.identityId)}`);
      if (!session.token) return;
      await identitiesPage(root, {ui, stale});
      ui.say(`Deleted ${i.name}: the tokens issued through it are revoked.`);
    } catch (err) {
      ui.error(err);
    }
  }

  /** A group of scope checkboxes and one of key checkboxes, as in the token form. */
  function rightsFields() {
    const scopeBoxes = SCOPES.map((s) => {
      const never = s === 'tokens:write';
      const allowed = can(s) && !never;
      const box = h('input', {type: 'checkbox', value: s, disabled: !allowed, checked: s === 'keys:read' && allowed});
      const why = never ? ' (never given to an exchanged token)' : allowed ? null : ' (your token lacks it)';
      return {s, box, el: h('label', {class: ['check', !allowed && 'disabled']}, box, ` ${s}`, why ? h('span', {class: 'why'}, why) : null)};
    });
    const mine = session.self && session.self.keyIds;
    const keyBoxes = keys.filter((k) => !mine || mine.includes(k.keyId)).map((k) => {
      const box = h('input', {type: 'checkbox', value: k.keyId});
      return {box, el: h('label', {class: 'check'}, box, ` ${k.name}`)};
    });
    const ttl = select(TTL_PRESETS, '900');
    const rate = h('input', {type: 'number', min: 1, max: 100000, step: 1, placeholder: 'unlimited'});
    const cidrs = h('input', {type: 'text', placeholder: '203.0.113.0/24, …', spellcheck: 'false', autocomplete: 'off'});
    const el = [
      h('fieldset', null, h('legend', null, 'Scopes of the tokens it issues (at most your own)'), h('div', {class: 'checks'}, scopeBoxes.map((b) => b.el))),
      h('fieldset', null, h('legend', null, mine ? 'Keys (within your own allow-list; none ticked inherits it)' : 'Keys (none ticked: all keys)'),
        keyBoxes.length ? h('div', {class: 'checks'}, keyBoxes.map((b) => b.el)) : h('p', {class: 'muted'}, can('keys:list') ? 'No keys.' : 'Your token cannot list keys.')),
      h('div', {class: 'row'},
        field('Each token lives', ttl, 'Never past your own token’s expiry.'),
        field('Rate limit (requests/minute)', rate, 'Empty: inherit yours, or none.'),
        field('Allowed source addresses (optional)', cidrs, 'CIDRs, checked on every request the tokens make.')),
    ];
    return {el, fill(body) {
      body.scopes = scopeBoxes.filter((b) => b.box.checked).map((b) => b.s);
      if (!body.scopes.length) throw new Error('Choose at least one scope.');
      const keyIds = keyBoxes.filter((b) => b.box.checked).map((b) => b.box.value);
      if (keyIds.length) body.keyIds = keyIds;
      const cidrList = cidrs.value.split(/[\s,]+/).filter(Boolean);
      if (cidrList.length) body.allowedCidrs = cidrList;
      if (rate.value) body.rateLimit = Number(rate.value);
      body.tokenTtl = Number(ttl.value);
      return body;
    }};
  }

  function githubFields() {
    const owner = h('input', {type: 'text', name: 'owner', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'acme'});
    const repo = h('input', {type: 'text', name: 'repo', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'app'});
    const repoId = h('input', {type: 'text', name: 'repository_id', required: true, inputmode: 'numeric', pattern: '[0-9]{1,20}', autocomplete: 'off', placeholder: '81234567'});
    const onName = nextId('on');
    const onEnv = h('input', {type: 'radio', name: onName, value: 'environment', checked: true});
    const onRef = h('input', {type: 'radio', name: onName, value: 'ref'});
    const target = h('input', {type: 'text', name: 'target', required: true, autocomplete: 'off', spellcheck: 'false', value: 'production'});
    const targetField = field('Environment', target, 'As named in the repository’s settings (Environments).');
    const audience = h('input', {type: 'text', name: 'audience', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'ibyok:acme'});
    const subject = h('code', {class: 'subject'});
    const on = () => (onEnv.checked ? 'environment' : 'ref');
    const preview = () => {
      const label = targetField.querySelector('label');
      const hint = targetField.querySelector('.hint');
      replace(label, on() === 'environment' ? 'Environment' : 'Branch');
      replace(hint, on() === 'environment' ? 'As named in the repository’s settings (Environments).' : 'A branch name (main), or a full ref (refs/tags/v1.0.0).');
      replace(subject, githubSubject(owner.value.trim() || 'OWNER', repo.value.trim() || 'REPO', on(), target.value.trim() || (on() === 'environment' ? 'ENVIRONMENT' : 'BRANCH')));
    };
    for (const el of [owner, repo, target]) el.addEventListener('input', preview);
    for (const el of [onEnv, onRef]) el.addEventListener('change', () => {
      target.value = on() === 'environment' ? 'production' : 'main';
      preview();
    });
    preview();
    const el = [
      h('div', {class: 'row'},
        field('Owner', owner, 'The user or organization, as GitHub spells it.'),
        field('Repository', repo, 'Its name, without the owner.'),
        field('Repository ID', repoId, ['A number: ', h('code', null, 'gh api repos/OWNER/REPO --jq .id'), ' prints it. Unlike the name, it stays when the repository is renamed, and a new repository of the same name gets another.'])),
      h('fieldset', {class: 'inline'}, h('legend', null, 'Which jobs'),
        h('label', {class: 'inline'}, onEnv, 'Jobs that deploy to an environment'),
        h('label', {class: 'inline'}, onRef, 'Jobs that run on a branch')),
      h('div', {class: 'row'},
        targetField,
        field('Audience', audience, 'The workflow asks GitHub for a token with this audience (the action’s audience input). Something unique to this vault.')),
      h('p', {class: 'preview'}, 'Subject: ', subject, h('span', {class: 'muted'}, ` · issuer ${GITHUB_ISSUER} · repository_id must match`)),
    ];
    return {el, fill(body) {
      const id = repoId.value.trim();
      if (!/^[0-9]{1,20}$/.test(id)) throw new Error('The repository ID is a number (gh api repos/OWNER/REPO --jq .id).');
      return Object.assign(body, {kind: 'oidc', issuer: GITHUB_ISSUER, audience: audience.value.trim(),
        subject: githubSubject(owner.value.trim(), repo.value.trim(), on(), target.value.trim()),
        boundClaims: {repository_id: id}});
    }};
  }

  function oidcFields() {
    const issuer = h('input', {type: 'url', name: 'issuer', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'https://gitlab.com'});
    const audience = h('input', {type: 'text', name: 'audience', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'ibyok:acme'});
    const subject = h('input', {type: 'text', name: 'subject', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'project_path:acme/app:ref_type:branch:ref:main'});
    const glob = h('input', {type: 'checkbox', name: 'glob'});
    const claims = h('textarea', {rows: 2, name: 'claims', spellcheck: 'false', placeholder: 'namespace_id=4242'});
    const el = [
      h('div', {class: 'row'},
        field('Issuer', issuer, 'An https:// URL; its /.well-known/openid-configuration must be reachable.'),
        field('Audience', audience, 'The token’s aud must be or contain it.')),
      h('div', {class: 'row'},
        field('Subject', subject, 'The token’s sub, exactly.'),
        h('label', {class: 'inline toggle'}, glob, 'The subject is a pattern (* stands for one segment between : or /)')),
      field('Bound claims (optional)', claims, 'One a line, name=value. A name on several lines allows any of its values.'),
    ];
    return {el, fill(body) {
      const parsed = parseClaims(claims.value);
      if (parsed.problem) throw new Error(parsed.problem);
      Object.assign(body, {kind: 'oidc', issuer: issuer.value.trim(), audience: audience.value.trim(), subject: subject.value.trim()});
      if (glob.checked) body.subjectMatch = 'glob';
      if (Object.keys(parsed.claims).length) body.boundClaims = parsed.claims;
      return body;
    }};
  }

  function awsFields() {
    const account = h('input', {type: 'text', name: 'awsAccountId', required: true, inputmode: 'numeric', pattern: '[0-9]{12}', maxlength: 12, autocomplete: 'off', placeholder: '123456789012'});
    const role = h('input', {type: 'text', name: 'awsRoleName', required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false', placeholder: 'deploy'});
    const el = [
      h('div', {class: 'row'},
        field('AWS account ID', account, '12 digits.'),
        field('Role name', role, 'Sessions of this role match (arn:aws:sts::ACCOUNT:assumed-role/ROLE/…); the session name is never trusted.')),
    ];
    return {el, fill(body) {
      return Object.assign(body, {kind: 'aws', awsAccountId: account.value.trim(), awsRoleName: role.value.trim()});
    }};
  }

  function createForm() {
    const name = h('input', {type: 'text', required: true, maxlength: 100, autocomplete: 'off', placeholder: 'deploy from main'});
    const kinds = {github: githubFields(), oidc: oidcFields(), aws: awsFields()};
    // Only the chosen kind's fields are in the form (the others keep what
    // was typed in them, for when the choice comes back).
    const panels = Object.fromEntries(Object.entries(kinds).map(([k, f]) => [k, h('div', {class: 'kind-fields', 'data-kind': k}, f.el)]));
    const panel = h('div', null, panels.github);
    const kindName = nextId('kind');
    let kind = 'github';
    const radios = KINDS.map(([v, label]) => h('label', {class: 'inline'},
      h('input', {type: 'radio', name: kindName, value: v, checked: v === kind, onchange: () => {
        kind = v;
        replace(panel, panels[kind]);
      }}), label));
    const rights = rightsFields();
    const form = h('form', {class: 'add identity', 'aria-label': 'Create an identity'},
      h('div', {class: 'row name-row'}, field('Name', name, 'Shown in the audit log and in the names of the tokens it issues.')),
      h('fieldset', {class: 'inline kinds'}, h('legend', null, 'Who exchanges'), radios),
      panel,
      rights.el,
      h('button', {type: 'submit'}, 'Create identity'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let body;
      try {
        body = rights.fill(kinds[kind].fill({name: name.value.trim()}));
      } catch (err) {
        ui.error(err);
        return;
      }
      ui.clear();
      try {
        const created = await api('POST', '/identities', {body});
        await identitiesPage(root, {ui, stale});
        showCreated(created);
      } catch (err) {
        ui.error(err);
      }
    });
    return form;
  }

  /** A block of text to paste, with a copy button. */
  function snippet(text) {
    const said = h('span', {class: 'muted', role: 'status'});
    return h('div', {class: 'snippet-box'},
      h('pre', {class: 'snippet', tabindex: '0'}, text),
      h('div', {class: 'copy'}, said, h('button', {type: 'button', class: 'secondary small', onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          replace(said, 'Copied.');
        } catch {
          replace(said, 'Select and copy it by hand (the clipboard is not available).');
        }
      }}, 'Copy')));
  }

  /** `ENV_VAR=key_…` for each key the identity names (OPENAI_API_KEY for an openai key, …), or a placeholder. */
  function keyLines(i) {
    if (!i.keyIds) return ['OPENAI_API_KEY=key_…'];
    const used = new Map();
    return i.keyIds.map((id) => {
      const k = keys.find((x) => x.keyId === id);
      const base = `${(k ? k.llmType : 'provider').toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_API_KEY`;
      const n = (used.get(base) || 0) + 1;
      used.set(base, n);
      return `${n > 1 ? `${base}_${n}` : base}=${id}`;
    });
  }

  /** The new identity's id, and how a workload uses it. */
  function showCreated(i) {
    const out = root.querySelector('.created');
    const url = location.origin;
    const lines = keyLines(i);
    let how;
    if (i.kind === 'aws') {
      how = [h('p', null, 'A workload with that role’s credentials signs in with the CLI:'),
        snippet(`ibyok run --url ${url} --identity ${i.identityId} --aws \\\n  ${lines.map((l) => `--env-var ${l}`).join(' ')} -- ./deploy.sh`)];
    } else if (i.issuer === GITHUB_ISSUER) {
      how = [h('p', null, 'In a workflow of that repository (the job needs id-token: write; the keys arrive as masked environment variables):'),
        snippet([
          'jobs:',
          '  deploy:',
          '    runs-on: ubuntu-latest',
          i.subject.includes(':environment:') ? `    environment: ${i.subject.split(':environment:')[1]}` : null,
          '    permissions:',
          '      id-token: write',
          '      contents: read',
          '    steps:',
          '      - uses: actions/checkout@v4',
          '      - uses: YOUR-ORG/ibyok@COMMIT   # the action.yml of this repository, pinned',
          '        with:',
          `          url: ${url}`,
          `          identity: ${i.identityId}`,
          `          audience: ${i.audience}`,
          '          keys: |',
          ...lines.map((l) => `            ${l}`),
          `      - run: ./deploy.sh   # sees ${lines.map((l) => `$${l.split('=')[0]}`).join(', ')}`,
        ].filter((l) => l !== null).join('\n'))];
    } else {
      how = [h('p', null, 'A workload with a token of that issuer signs in with the CLI:'),
        snippet(`ibyok run --url ${url} --identity ${i.identityId} --oidc-token-file /path/to/token \\\n  ${lines.map((l) => `--env-var ${l}`).join(' ')} -- ./deploy.sh`)];
    }
    replace(out, h('div', {class: 'card identity-created', role: 'region', 'aria-labelledby': 'created-title'},
      h('h2', {id: 'created-title'}, `Identity “${i.name}” created`),
      h('p', null, 'Its id: ', h('code', {class: 'idn'}, i.identityId), '. It holds no secret: a workload proves who it is with its own credential.'),
      how,
      h('button', {type: 'button', class: 'secondary', onclick: () => replace(out)}, 'Done')));
  }

  const tbody = h('tbody', null, identities.map(row));
  replace(root,
    writable ? null : h('p', {class: 'notice readonly'}, `Read-only: ${lacks('tokens:write')}, so creating and deleting identities are disabled.`),
    h('p', {class: 'muted intro'}, 'A CI job or a cloud workload exchanges the credential it already holds for a token that lives minutes, with the rights set here: no vault token sits in a CI secret.'),
    h('div', {class: 'created', 'aria-live': 'polite'}),
    writable ? h('details', {class: 'card', open: identities.length === 0}, h('summary', null, 'Create an identity'), createForm()) : null,
    identities.length
      ? h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Identities'}, h('table', {class: 'list identities'},
        h('caption', {class: 'sr-only'}, 'Workload identities'),
        h('thead', null, h('tr', null, ['Identity', 'Trusts', 'Scopes', 'Keys', 'Token TTL', 'Created', ''].map((t) => h('th', {scope: 'col', class: t === 'Token TTL' ? 'num' : null}, t)))),
        tbody))
      : h('p', {class: 'empty'}, writable ? 'No identities yet.' : 'No identities to show: a token sees those made by itself and by the tokens issued from it.'));

  let names;
  try {
    [tokens, names] = await Promise.all([listAll('/tokens', 'tokens'), memberNames()]);
  } catch {
    tokens = null; // the names stay ids
  }
  if (stale() || !tokens) return;
  people = peopleOf(tokens, names);
  for (const i of identities) {
    const cell = creators.get(i.identityId);
    if (cell && cell.isConnected) cell.replaceWith(creatorCell(i));
  }
}
