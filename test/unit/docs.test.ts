import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { HTTP_TO_COAP } from '../../gateway/src/bridge/index.ts';
import { ERROR_TABLE } from '../../gateway/src/errors.ts';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ErrorKey, NONCE_BYTES, Paths, REFRESH_TOKEN_BYTES, TokenFormat, WireError,
} from '../../gateway/src/wire/index.ts';

// The guides are the contract firmware, backend and operations teams read: they must say what the
// code does, and every link between them must lead somewhere.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS_DIR = join(ROOT, 'gateway/docs');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const wireContract = read('gateway/docs/wire-contract.md');
const backendGuide = read('gateway/docs/backend-guide.md');
const operatorGuide = read('gateway/docs/operator-guide.md');
const guides = readdirSync(DOCS_DIR).filter((name) => name.endsWith('.md')).map((name) => join(DOCS_DIR, name));
const documents = [join(ROOT, 'README.md'), ...guides];

t.test('the wire contract lists every wire error code with the CoAP code the gateway sends', async (t) => {
  const rows = new Map<number, string>();
  for (const m of wireContract.matchAll(/^\| (\d{1,2}) \| (\d\.\d\d) \|/gm)) rows.set(Number(m[1]), m[2]!);
  const sent = new Map<number, Set<string>>();
  for (const { wire, coap } of Object.values(ERROR_TABLE)) sent.set(wire, (sent.get(wire) ?? new Set()).add(coap));
  t.same([...rows.keys()].sort((a, b) => a - b), Object.values(WireError).sort((a, b) => a - b), 'one row per wire code');
  for (const [wire, coaps] of sent) t.same([...coaps], [rows.get(wire)], `wire code ${wire}`);
});

t.test('the backend guide\'s status mapping matches the bridge table', async (t) => {
  const documented = new Map<number, string>();
  for (const m of backendGuide.matchAll(/\| (\d{3}(?:, \d{3})*) \| (\d\.\d\d)/g)) {
    for (const status of m[1]!.split(', ')) documented.set(Number(status), m[2]!);
  }
  for (const [status, coap] of HTTP_TO_COAP) t.equal(documented.get(status), coap, `HTTP ${status}`);
});

t.test('the wire contract states the option number and the CBOR keys of the code', async (t) => {
  t.match(wireContract, new RegExp(`number ${ACCESS_TOKEN_OPTION}`));
  t.match(wireContract, `{${AuthRequestKey.deviceId}: device id (text), ${AuthRequestKey.secret}: secret (bytes)}`);
  t.match(wireContract, `{${AuthRequestKey.deviceId}: device id, ${AuthRequestKey.assertion}: assertion (text`);
  t.match(wireContract, `{${AuthRequestKey.refreshToken}: refresh token (bytes)}`);
  t.match(wireContract, `optional \`${AuthRequestKey.tokenFormat}: token format\` (${TokenFormat.jwt} JWT, ${TokenFormat.cwt} CWT)`);
  t.match(wireContract, `{${AuthResponseKey.accessToken}: access token (text: a JWT; bytes: a CWT), ${AuthResponseKey.expiresInSec}: expires_in s, `
    + `${AuthResponseKey.refreshToken}: refresh token (${REFRESH_TOKEN_BYTES} bytes), ${AuthResponseKey.serverTimeSec}: server time s}`);
  t.match(wireContract, `| \`${Paths.nonce}\` | POST |`);
  t.match(wireContract, `{${AuthResponseKey.nonce}: nonce (${NONCE_BYTES} bytes), ${AuthResponseKey.serverTimeSec}: server time s}`);
  t.match(wireContract, `{${ErrorKey.code}: wire error code, ${ErrorKey.serverTimeSec}: server time s}`);
});

t.test('the operator guide\'s metrics table names every metric the gateway exposes', async (t) => {
  const { createMetrics } = await import('../../gateway/src/admin/metrics.ts');
  const metrics = createMetrics(() => undefined);
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
  t.ok(names.length > 10, `${names.length} metrics`);
  for (const name of names) t.match(operatorGuide, `\`${name}\``, name);
});

/** Markdown outside fenced blocks and inline code: what a renderer turns into links and headings. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, (code) => code.replace(/[[\]()]/g, ' '));
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
  for (const m of withoutFences.matchAll(/^#{1,6} (.+)$/gm)) {
    const base = m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const repeats = seen.get(base) ?? 0;
    seen.set(base, repeats + 1);
    anchors.add(repeats === 0 ? base : `${base}-${repeats}`);
  }
  return anchors;
}

t.test('every relative link in README and the guides leads to a file and, with a #, to a heading there', async (t) => {
  let checked = 0;
  for (const file of documents) {
    const name = relative(ROOT, file);
    for (const m of prose(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue;
      checked += 1;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const resolved = path === '' ? file : join(dirname(file), path);
      if (!existsSync(resolved)) {
        t.fail(`${name}: ${target} names no file`);
        continue;
      }
      if (anchor === undefined) continue;
      t.ok(resolved.endsWith('.md') && anchorsOf(readFileSync(resolved, 'utf8')).has(anchor),
        `${name}: ${target} names a heading of ${relative(ROOT, resolved)}`);
    }
  }
  t.ok(checked > 40, `${checked} relative links checked`);
});

t.test('README links every guide, and each guide says first who it is for', async (t) => {
  const readme = read('README.md');
  t.ok(guides.length >= 6, `${guides.length} guides`);
  for (const guide of guides) {
    const name = relative(DOCS_DIR, guide);
    t.match(readme, `](gateway/docs/${name})`, `README links ${name}`);
    const firstParagraph = readFileSync(guide, 'utf8').split('\n\n')[1] ?? '';
    t.match(firstParagraph, /^For /, `${name} opens with who it is for`);
  }
});
