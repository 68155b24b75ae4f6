// People in the token tree (decision 0069). Each member who signed in has
// an anchor: a token nobody holds (`memberId` set, no `issuedBy`), named
// after them. Their sessions are its children (`memberId` and `issuedBy` the
// anchor, named "Ana Lima (session)"); what they create from a session is
// entered under it too (a token's `issuedBy`, an identity's `createdBy`, the
// anchor; no `memberId`). Removing or demoting the member revokes the anchor,
// and with it all of that.

import {can, listAll, session} from './api.js';

const SESSION_SUFFIX = ' (session)';

export const isAnchor = (t) => Boolean(t.memberId) && !t.issuedBy;
export const isSession = (t) => Boolean(t.memberId) && Boolean(t.issuedBy);

/** "Ana Lima (session)" → "Ana Lima". */
export function personOfSession(name) {
  return name.endsWith(SESSION_SUFFIX) ? name.slice(0, -SESSION_SUFFIX.length) : name;
}

/** "Ana Lima’s session". */
export const sessionLabel = (person) => `${person}’s session`;

/** Member id → current name, when the caller may list members (else empty). */
export async function memberNames() {
  if (!can('members:read')) return new Map();
  try {
    return new Map((await listAll('/members', 'members')).map((m) => [m.memberId, m.name]));
  } catch {
    return new Map();
  }
}

/**
 * Anchor token id → {memberId, name}: from the anchors listed (a root token
 * lists them) and from sessions (a session lists itself, not the anchor
 * above it). The member's current name wins over the one the anchor was
 * made with.
 */
export function peopleOf(tokens, names = new Map()) {
  const out = new Map();
  for (const t of tokens) {
    if (isAnchor(t)) out.set(t.tokenId, {memberId: t.memberId, name: names.get(t.memberId) || t.name});
  }
  for (const t of tokens) {
    if (isSession(t) && !out.has(t.issuedBy)) {
      out.set(t.issuedBy, {memberId: t.memberId, name: names.get(t.memberId) || personOfSession(t.name)});
    }
  }
  return out;
}

/** Whether the signed-in token sees the whole tenant's tokens (a root: no issuer, no member). */
export function seesAll() {
  return Boolean(session.self && !session.self.issuedBy && !session.self.memberId);
}

const live = (t, now) => !t.revokedAt && Date.parse(t.expiresAt) > now;

/**
 * What member `memberId` has that their removal or demotion ends, from the
 * caller's token and identity lists: {anchors, sessions, tokens, exchanged,
 * identities} (live ones; tokens issued below their tokens included), or
 * null when the caller cannot tell (no anchor of theirs in its view and it
 * does not see the whole tenant).
 */
export function madeBy(memberId, tokens, identities) {
  const now = Date.now();
  const anchors = tokens.filter((t) => isAnchor(t) && t.memberId === memberId && live(t, now));
  if (!anchors.length) {
    return seesAll() ? {anchors, sessions: [], tokens: [], exchanged: [], identities: []} : null;
  }
  const below = new Set(anchors.map((a) => a.tokenId));
  const out = {anchors, sessions: [], tokens: [], exchanged: [], identities: []};
  // Tokens come oldest first in the list, an issuer before what it issued;
  // the loop repeats until nothing new is found, whatever the order.
  let grew = true;
  const seen = new Set();
  while (grew) {
    grew = false;
    for (const t of tokens) {
      if (seen.has(t.tokenId) || !t.issuedBy || !below.has(t.issuedBy)) continue;
      seen.add(t.tokenId);
      below.add(t.tokenId);
      grew = true;
      if (!live(t, now)) continue;
      if (isSession(t)) out.sessions.push(t);
      else if (t.identityId) out.exchanged.push(t);
      else out.tokens.push(t);
    }
  }
  out.identities = identities.filter((i) => below.has(i.createdBy));
  return out;
}
