// The token format of API.md, checked in the page before any request:
// `ibyok_` + 32 base62 + 6 base62 of the CRC-32 (IEEE) of everything before,
// alphabet 0-9A-Za-z, most significant digit first, padded with `0`.
// Mirrors shared/src/token.rs (`checksum`) and shared/src/ids.rs (`base62_of_bytes`).

export const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX = 'ibyok_';
const RANDOM_LEN = 32;
const CHECKSUM_LEN = 6;

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A non-negative integer (Number or BigInt) in base62, padded to `width`. */
export function base62(n, width) {
  let v = BigInt(n);
  let s = '';
  while (v > 0n) {
    s = ALPHABET[Number(v % 62n)] + s;
    v /= 62n;
  }
  return s.padStart(width, '0');
}

export function checksum(body) {
  return base62(crc32(new TextEncoder().encode(body)), CHECKSUM_LEN);
}

/** Why `raw` is not a token, or null when its shape and checksum are right. */
export function tokenProblem(raw) {
  if (!raw) return 'Paste a token.';
  if (!raw.startsWith(PREFIX)) return 'A token starts with ibyok_.';
  if (raw.length !== PREFIX.length + RANDOM_LEN + CHECKSUM_LEN) {
    return `A token has ${PREFIX.length + RANDOM_LEN + CHECKSUM_LEN} characters; this has ${raw.length}.`;
  }
  const rest = raw.slice(PREFIX.length);
  if (![...rest].every((ch) => ALPHABET.includes(ch))) return 'A token has only letters and digits after ibyok_.';
  const body = raw.slice(0, PREFIX.length + RANDOM_LEN);
  if (checksum(body) !== raw.slice(PREFIX.length + RANDOM_LEN)) {
    return 'The checksum does not match: a character is wrong or missing.';
  }
  return null;
}

/** The token's id (`tok_…`), as the server derives it (shared/src/token.rs). */
export async function tokenIdOf(raw) {
  const data = new TextEncoder().encode(`ibyok:token-id:v1\0${raw}`);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  let n = 0n;
  for (const b of digest.slice(0, 16)) n = (n << 8n) | BigInt(b);
  return `tok_${base62(n, 22)}`;
}
