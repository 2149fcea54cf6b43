import { randomBytes } from 'node:crypto';
import { generate, type ParsedPacket } from 'coap-packet';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { cut, LOG_TEXT_CHARS } from '../../gateway/src/log/index.ts';
import { ACCESS_TOKEN_OPTION, AuthRequestKey, ContentFormat, encodeCbor } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { RawCoapClient } from '../helpers/bridge-raw-coap.ts';
import { accessClaims, flipSignatureByte, hmacToken, unsecuredToken } from '../helpers/token-forge.ts';

// Whatever a device sends, the log never carries token material (no token, no
// part of a JWS signature, no secret in any encoding), every attacker-chosen string in a line is
// cut to LOG_TEXT_CHARS, and no single request makes a long line. Hostile requests go to a real
// gateway over UDP (raw datagrams, so sizes are not limited by a client library); then every
// line the gateway logged is searched.

/** Any run of this many characters of token material in a log line is a leak. */
const WINDOW_CHARS = 32;
/** No log line may be longer than this, whatever one request carried. */
const MAX_LINE_CHARS = 2000;

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const randomText = (chars: number): string => randomBytes(Math.ceil((chars * 3) / 4)).toString('base64url').slice(0, chars);
/** Printable ASCII with quotes, backslashes and spaces: what a careless log format would break on. */
const randomPrintable = (chars: number): string => [...randomBytes(chars)].map((b) => String.fromCharCode(32 + (b % 95))).join('');

/**
 * Strings that must not show up in any log line, by any run of `window` characters: every run is
 * kept in a set, so each line is searched once whatever the number of strings. Shorter strings
 * (down to `minChars`) must not appear whole.
 */
class Forbidden {
  readonly #windows = new Map<string, string>();
  readonly #short = new Map<string, string>();
  constructor(readonly window: number, readonly minChars: number) {}

  add(label: string, text: string): void {
    if (text.length < this.minChars) return;
    if (text.length < this.window) {
      this.#short.set(text, label);
      return;
    }
    for (let i = 0; i + this.window <= text.length; i += 1) this.#windows.set(text.slice(i, i + this.window), label);
  }

  /** The label of the first forbidden string found in `line`. */
  find(line: string): string | undefined {
    for (let i = 0; i + this.window <= line.length; i += 1) {
      const label = this.#windows.get(line.slice(i, i + this.window));
      if (label !== undefined) return label;
    }
    for (const [text, label] of this.#short) if (line.includes(text)) return label;
    return undefined;
  }
}

/** A token and the forms of its signature that a log could carry. */
function addToken(material: Forbidden, label: string, token: string): void {
  material.add(label, token);
  const parts = token.split('.');
  if (parts.length < 2) return;
  const signature = parts.at(-1)!;
  material.add(`${label} (signature)`, signature);
  const bytes = Buffer.from(signature, 'base64url');
  if (bytes.length >= 16) {
    material.add(`${label} (signature as hex)`, bytes.toString('hex'));
    material.add(`${label} (signature as base64)`, bytes.toString('base64'));
  }
}

/** An opaque refresh token (bytes): every text spelling a log could carry it in. */
function addRefreshToken(material: Forbidden, label: string, token: Uint8Array): void {
  for (const encoding of ['hex', 'base64', 'base64url'] as const) material.add(`${label} (${encoding})`, Buffer.from(token).toString(encoding));
}

function addSecret(material: Forbidden, label: string, secret: Buffer): void {
  for (const encoding of ['hex', 'base64', 'base64url'] as const) material.add(`${label} (${encoding})`, secret.toString(encoding));
}

interface RawAsk {
  method?: 'GET' | 'POST';
  path: string[];
  query?: string[];
  accessToken?: string;
  payload?: Buffer;
}

/** Sends one confirmable request, built with room for any size, and waits for its answer (or RST). */
function rawAsker(client: RawCoapClient) {
  let messageId = 0x2000;
  return async (r: RawAsk): Promise<ParsedPacket> => {
    messageId += 1;
    const token = randomBytes(4);
    const options: { name: string; value: Buffer }[] = r.path.map((segment) => ({ name: 'Uri-Path', value: Buffer.from(segment) }));
    if (r.payload !== undefined) options.push({ name: 'Content-Format', value: Buffer.from([ContentFormat.cbor]) });
    for (const pair of r.query ?? []) options.push({ name: 'Uri-Query', value: Buffer.from(pair) });
    if (r.accessToken !== undefined) options.push({ name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(r.accessToken, 'latin1') });
    const datagram = generate({
      code: r.method ?? 'GET', messageId, token, confirmable: true, options, payload: r.payload ?? Buffer.alloc(0),
    }, 65_000);
    const id = messageId;
    const answered = client.next((p) => (p.reset && p.messageId === id) || (p.code !== '0.00' && p.token.equals(token)),
      `answer to ${r.method ?? 'GET'} /${r.path.join('/').slice(0, 40)}`);
    await client.send(datagram);
    const answer = await answered;
    if (answer.confirmable) await client.ack(answer);
    return answer;
  };
}

const loginBody = (entries: [number, unknown][]): Buffer => encodeCbor(new Map<number, unknown>(entries));

interface Loaded {
  h: Harness;
  /** The one access token that should have reached the backend. */
  goodToken: string;
  /** The Authorization header of every request the backend got during the hostile input. */
  forwarded: (string | undefined)[];
  /** Token material: tokens, signatures, secrets. */
  material: Forbidden;
  /** Attacker-chosen strings: no run longer than LOG_TEXT_CHARS may appear. */
  chosen: Forbidden;
  answers: string[];
}

/** Hostile requests of every kind (tokens, logins, options, sizes), each several times; every answer's code kept. */
async function sendHostileInput(t: Test): Promise<Loaded> {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 5 } });
  const material = new Forbidden(WINDOW_CHARS, 20);
  const chosen = new Forbidden(LOG_TEXT_CHARS + 1, LOG_TEXT_CHARS + 1);
  const answers: string[] = [];
  const client = await RawCoapClient.open(t, h.port);
  const ask = rawAsker(client);
  const send = async (r: RawAsk) => answers.push((await ask(r)).code);

  const secret = await h.provision('sensor-1');
  addSecret(material, 'the device secret', secret);
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  if (tokens === undefined) throw new Error('sensor-1 could not log in');
  addToken(material, 'access token', tokens.accessToken);
  addRefreshToken(material, 'refresh token', tokens.refreshToken);
  const refreshHex = Buffer.from(tokens.refreshToken).toString('hex');
  const refreshBase64url = Buffer.from(tokens.refreshToken).toString('base64url');
  t.equal((await device.send({ method: 'GET', path: '/config', token: tokens.accessToken })).code, '2.05', 'the good token works');

  const [header, payload, signature] = tokens.accessToken.split('.') as [string, string, string];
  const kid = h.gateway.keystore.signingKey().kid;
  const forged: [string, string][] = [
    ...[0, 10, 40, 63].map((i): [string, string] => [`signature byte ${i} flipped`, flipSignatureByte(tokens.accessToken, i)]),
    ['a random signature', `${header}.${payload}.${randomBytes(64).toString('base64url')}`],
    ['the refresh token\'s bytes as a signature', `${header}.${payload}.${refreshBase64url}`],
    ['half a signature', `${header}.${payload}.${signature.slice(0, 43)}`],
    ['a signature with non-canonical trailing bits', `${header}.${payload}.${signature.slice(0, -1)}${signature.at(-1) === 'A' ? 'B' : 'A'}`],
    ['a signature one byte longer', `${header}.${payload}.${Buffer.concat([Buffer.from(signature, 'base64url'), randomBytes(1)]).toString('base64url')}`],
    ['the refresh token as an access token (hex)', refreshHex],
    ['the refresh token as an access token (base64url)', refreshBase64url],
    ['alg none', unsecuredToken(accessClaims('sensor-1', h.clock.nowMs()), kid)],
    ['HS256 keyed with a guess', hmacToken(randomBytes(32), accessClaims('sensor-1', h.clock.nowMs()), kid)],
  ];
  // kids the gateway has never seen: 10 KB (over the Access-Token option's limit), 1,000
  // characters (under it, so it reaches the verifier), and one full of quotes and newlines.
  for (const [name, chosenKid] of [['a 10 KB kid', randomText(10_000)], ['a 1,000-character kid', randomText(1000)],
    ['a kid with quotes and newlines', `"\n\\${randomPrintable(300)}\r\n`]] as const) {
    chosen.add(name, chosenKid);
    forged.push([name, `${b64url({ alg: 'ES256', typ: 'at+jwt', kid: chosenKid })}.${payload}.${signature}`]);
  }
  const brokenHeaderInside = randomText(200);
  chosen.add('text inside a broken header', brokenHeaderInside);
  const garbage: [string, string][] = [
    ['random base64url, 100 characters', randomText(100)],
    ['random base64url, 1,000 characters', randomText(1000)],
    ['random base64url, 3,000 characters', randomText(3000)],
    ['random printable text', randomPrintable(500)],
    ['three random parts', `${randomText(100)}.${randomText(300)}.${randomText(86)}`],
    ['five random parts', [1, 2, 3, 4, 5].map(() => randomText(60)).join('.')],
    ['a header that is not JSON', `${Buffer.from(`{"alg":"ES256","kid":"${brokenHeaderInside}`).toString('base64url')}.${payload}.${signature}`],
    ['a header that is a JSON array', `${b64url([kid, randomText(80)])}.${payload}.${signature}`],
    ['a payload that is not JSON', `${header}.${randomText(300)}.${signature}`],
  ];
  for (const [name, token] of [...forged, ...garbage]) {
    addToken(material, name, token);
    await send({ path: ['config'], accessToken: token });
    await send({ method: 'POST', path: ['telemetry', 'temp'], accessToken: token, payload: encodeCbor(new Map([['c', 21]])) });
    await send({ method: 'POST', path: ['auth', 'refresh'], payload: loginBody([[AuthRequestKey.refreshToken, token]]) });
  }
  await send({ path: ['config'], accessToken: '' });
  // Refresh tokens: a second family (the good token's stays live), refreshed once, so that a
  // rotation and a theft (which logs a warning naming the family) are among the lines searched.
  const second = (await device.login('sensor-1', secret)).tokens;
  if (second === undefined) throw new Error('sensor-1 could not log in again');
  addToken(material, 'second access token', second.accessToken);
  addRefreshToken(material, 'second refresh token', second.refreshToken);
  const rotated = (await device.refresh(second.refreshToken)).tokens;
  if (rotated === undefined) throw new Error('sensor-1 could not refresh');
  addToken(material, 'rotated access token', rotated.accessToken);
  addRefreshToken(material, 'rotated refresh token', rotated.refreshToken);
  const unknownFamily = Buffer.from(tokens.refreshToken);
  unknownFamily[0]! ^= 1;
  addRefreshToken(material, 'a refresh token with a flipped family byte', unknownFamily);
  const stolen = Buffer.from(rotated.refreshToken);
  stolen[stolen.length - 1]! ^= 1;
  addRefreshToken(material, 'a refresh token with a flipped last byte', stolen);
  for (const value of [unknownFamily, stolen, second.refreshToken, refreshHex, refreshBase64url, tokens.accessToken]) {
    await send({ method: 'POST', path: ['auth', 'refresh'], payload: loginBody([[AuthRequestKey.refreshToken, value]]) });
  }

  // Wrong secrets: the right device with wrong ones (past the login limit, too), unknown and
  // absurd device ids, secrets of the wrong size or type, and an assertion.
  const longId = randomText(300);
  const oddId = `"\n${randomPrintable(200)}`;
  chosen.add('a 300-character device id', longId);
  chosen.add('a device id with quotes and newlines', oddId);
  const logins: [string, unknown, unknown][] = [
    ...[1, 2, 3, 4, 5, 6, 7].map((i): [string, unknown, unknown] => [`wrong secret ${i}`, 'sensor-1', randomBytes(32)]),
    ['an unknown device', `ghost-${randomText(8)}`, randomBytes(32)],
    ['a 300-character device id', longId, randomBytes(32)],
    ['a device id with quotes and newlines', oddId, randomBytes(32)],
    ['a 1-byte secret', 'sensor-1', randomBytes(1)],
    ['a 1,000-byte secret', 'sensor-1', randomBytes(1000)],
    ['the secret as hex text', 'sensor-1', randomBytes(32).toString('hex')],
  ];
  for (const [name, id, wrong] of logins) {
    if (Buffer.isBuffer(wrong)) addSecret(material, name, wrong);
    else material.add(name, String(wrong));
    await send({ method: 'POST', path: ['auth'], payload: loginBody([[AuthRequestKey.deviceId, id], [AuthRequestKey.secret, wrong]]) });
  }
  const assertion = `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url({ iss: 'sensor-1', aud: 'coap-gateway' })}.${randomBytes(64).toString('base64url')}`;
  addToken(material, 'an assertion', assertion);
  await send({ method: 'POST', path: ['auth'], payload: loginBody([[AuthRequestKey.deviceId, 'sensor-1'], [AuthRequestKey.assertion, assertion]]) });

  // Long paths (Uri-Path allows 255 bytes a segment) and long query strings, with and without a good token.
  for (const accessToken of [tokens.accessToken, undefined]) {
    const segments = [1, 2, 3, 4, 5].map(() => randomText(200));
    const query = [1, 2, 3, 4].map(() => `q=${randomText(250)}`);
    for (const [i, text] of [...segments, ...query].entries()) chosen.add(`path or query ${i}`, text);
    await send({ path: [segments[0]!], accessToken });
    await send({ path: segments, accessToken });
    await send({ path: ['config', segments[1]!], accessToken });
    await send({ method: 'POST', path: ['telemetry', segments[2]!], accessToken, payload: encodeCbor(new Map([['c', 1]])) });
    await send({ path: ['config'], query, accessToken });
    await send({ method: 'POST', path: ['auth'], query, payload: loginBody([[AuthRequestKey.deviceId, 'sensor-1'], [AuthRequestKey.secret, randomBytes(32)]]) });
  }
  const forwarded = h.backend.requests.map((r) => r.headers.authorization);
  await h.assertStillServes(t);
  return { h, goodToken: tokens.accessToken, forwarded, material, chosen, answers };
}

/** Each offending line once, by what it carried, with the names of its fields (never the text itself). */
function offenders(h: Harness, check: (text: string) => string | undefined): { msg: unknown; fields: string[]; found: string }[] {
  const found: { msg: unknown; fields: string[]; found: string }[] = [];
  for (const line of h.logs) {
    const what = check(JSON.stringify(line));
    if (what !== undefined) found.push({ msg: line.msg, fields: Object.keys(line), found: what });
  }
  return found;
}

t.test('the search finds what it looks for (so a clean result means something)', async (t) => {
  const material = new Forbidden(WINDOW_CHARS, 20);
  const token = `${b64url({ alg: 'ES256', kid: 'k1' })}.${b64url({ sub: 'd' })}.${randomBytes(64).toString('base64url')}`;
  addToken(material, 'token', token);
  const signature = token.split('.')[2]!;
  t.ok(material.find(JSON.stringify({ reason: `bad ${signature.slice(20, 20 + WINDOW_CHARS)} here` })), 'a run of the signature');
  t.ok(material.find(JSON.stringify({ sig: Buffer.from(signature, 'base64url').toString('hex').slice(7, 50) })), 'the signature as hex');
  t.notOk(material.find(JSON.stringify({ reason: `bad ${signature.slice(20, 20 + WINDOW_CHARS - 1)} here` })), 'one character less is allowed');
  const refreshToken = randomBytes(16);
  addRefreshToken(material, 'refresh token', refreshToken);
  t.ok(material.find(JSON.stringify({ token: refreshToken.toString('hex') })), 'a refresh token as hex');
  t.ok(material.find(JSON.stringify({ token: refreshToken.toString('base64url') })), 'a refresh token as base64url');
  const chosen = new Forbidden(LOG_TEXT_CHARS + 1, LOG_TEXT_CHARS + 1);
  const kid = randomText(500);
  chosen.add('kid', kid);
  t.ok(chosen.find(JSON.stringify({ reason: `kid "${kid.slice(100, 100 + LOG_TEXT_CHARS + 1)}"` })), `${LOG_TEXT_CHARS + 1} characters of it`);
  t.notOk(chosen.find(JSON.stringify({ reason: `kid "${cut(kid)}"` })), 'cut() to LOG_TEXT_CHARS');
});

t.test('hostile input: no token material in any log line, attacker-chosen text cut short, no long line', async (t) => {
  const { h, goodToken, forwarded, material, chosen, answers } = await sendHostileInput(t);
  t.ok(answers.length > 100, `${answers.length} hostile requests answered`);
  // Each reached the backend with the one JWT the gateway signed for the good token.
  t.ok(forwarded.length > 0 && forwarded.every((auth) => auth === forwarded[0]),
    `only requests with the good token reached the backend (${forwarded.length})`);
  t.equal(decodeJwt(forwarded[0]!.replace(/^Bearer /, '')).jti, decodeJwt(goodToken).jti, 'and that JWT is the good token\'s');
  t.ok(h.logs.length >= answers.length, `${h.logs.length} log lines to search`);
  t.ok(h.logs.some((l) => l.level === 40 && /possible theft/.test(String(l.msg))), 'a refresh-token theft warning among them');

  t.same(offenders(h, (text) => material.find(text)), [],
    `no token, signature or secret (any ${WINDOW_CHARS}-character run of one) in any log line`);
  t.same(offenders(h, (text) => chosen.find(text)), [],
    `no attacker-chosen kid, device id, path or query longer than ${LOG_TEXT_CHARS} characters in any log line`);
  t.same(offenders(h, (text) => (text.length > MAX_LINE_CHARS ? `${text.length} characters` : undefined)), [],
    `no log line longer than ${MAX_LINE_CHARS} characters`);
  t.same(h.logs.filter((l) => l.level === 50).map((l) => l.msg), [], 'no hostile request made an error (level 50) line');
});
