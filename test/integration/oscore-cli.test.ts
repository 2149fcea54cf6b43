import { stat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_BUCKET_COUNT, bucketOf } from '../../gateway/src/store/file/device-buckets.ts';
import { buildFileStore, type DeviceRecord } from '../../gateway/src/store/index.ts';
import { failsWithExit2, readStore } from '../helpers/cli-checks.ts';
import { runCli } from '../helpers/cli-run.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// OSCORE contexts as an operator provisions them with the real CLI: made, printed once (for
// firmware and as aiocoap's settings.json), refused without --rotate, rotated, never listed,
// dropped by revoke, written for the simulator by a bulk add. Commands that cannot affect each
// other run side by side (each is a fresh Node process, about a second).

const HEX = (bytes: number) => new RegExp(`^[0-9a-f]{${bytes * 2}}$`);
const hexOf = (base64url: string) => Buffer.from(base64url, 'base64url').toString('hex');

/** What `devices add --oscore` and `devices oscore` print on stdout. */
interface Printed {
  device: string;
  oscore: { senderId: string; recipientId: string; masterSecret: string; masterSalt: string; algorithm: string; kdf: string };
  aiocoap: Record<string, string>;
  secret?: string;
}

async function idOfSender(state: string, sender: string): Promise<string | undefined> {
  const store = await buildFileStore(state);
  try {
    return await store.devices.idOfSender(sender);
  } finally {
    await store.close();
  }
}

t.test('CLI: devices add --oscore, devices oscore [--rotate] [--security], list, revoke, remove, and a bulk add for the simulator', async (t) => {
  const dir = await tempDir(t, 'gw-oscore-cli-');
  const state = join(dir, 'state');
  const out = join(dir, 'fleet.json');
  // Made by hand before: the bulk add must tighten it, not keep its mode.
  await writeFile(out, '[]', { mode: 0o644 });

  const [a, b, plain, noContext, badMode, bulk] = await Promise.all([
    runCli(['devices', 'add', 'dev-a', '--oscore', '--state', state]),
    runCli(['devices', 'add', 'dev-b', '--oscore', '--security', 'oscore', '--with-secret', '--scope', 'telemetry:write', 'config:read', '--state', state]),
    runCli(['devices', 'add', 'plain', '--state', state]),
    runCli(['devices', 'add', 'nope', '--security', 'oscore', '--state', state]),
    runCli(['devices', 'add', 'nope', '--oscore', '--security', 'sometimes', '--state', state]),
    runCli(['devices', 'add', '--count', '3', '--prefix', 'sim-o-', '--out', out, '--oscore', '--state', state]),
  ]);
  let printedA: Printed;
  let printedB: Printed;
  await t.test('devices add --oscore prints the context once, as JSON, for firmware and for aiocoap', async (t) => {
    t.equal(a.code, 0, a.stderr);
    printedA = JSON.parse(a.stdout) as Printed;
    t.same(Object.keys(printedA), ['device', 'oscore', 'aiocoap'], 'the device, the context, aiocoap\'s settings.json; no secret was asked for');
    t.match(printedA.oscore, {
      senderId: HEX(1), recipientId: '', masterSecret: HEX(16), masterSalt: HEX(8), algorithm: 'AES-CCM-16-64-128', kdf: 'HKDF-SHA-256',
    }, 'a 1-byte Sender ID (an early device), the gateway\'s empty one, 16 + 8 random bytes');
    t.strictSame(printedA.aiocoap, {
      'sender-id_hex': printedA.oscore.senderId, 'recipient-id_hex': '', 'secret_hex': printedA.oscore.masterSecret,
      'salt_hex': printedA.oscore.masterSalt, algorithm: 'AES-CCM-16-64-128',
    }, 'exactly the keys of the device\'s settings.json');
    t.match(a.stderr, new RegExp(`device "dev-a" added with scopes telemetry:write; its OSCORE context \\(Sender ID ${printedA.oscore.senderId}\\) above is shown only once`));

    t.equal(b.code, 0, b.stderr);
    printedB = JSON.parse(b.stdout) as Printed;
    t.match(printedB, { device: 'dev-b', secret: HEX(32) }, '--with-secret: the secret in the same JSON');
    t.not(printedB.oscore.senderId, printedA.oscore.senderId, 'each device its own Sender ID');
    t.not(printedB.oscore.masterSecret, printedA.oscore.masterSecret);
    t.match(b.stderr, /its OSCORE context \(Sender ID [0-9a-f]{2}\) and its secret above are shown only once; it is refused without OSCORE/);
    t.equal(plain.code, 0);
    t.match(plain.stdout, /^[0-9a-f]{64}\n$/, 'without --oscore: the secret alone, as before');
    failsWithExit2(t, noContext, /--security goes with --oscore/, '--security without --oscore');
    failsWithExit2(t, badMode, /argument 'sometimes' is invalid\. Allowed choices are oscore, any/, 'an unknown --security');
  });

  await t.test('the store keeps the context (mode 0600) with an index by Sender ID', async (t) => {
    const { devices } = await readStore(state);
    const recordA = devices.get('dev-a')!;
    t.match(recordA.oscore, { senderId: printedA.oscore.senderId, recipientId: '', generation: /^[A-Za-z0-9_-]{16}$/ });
    t.equal(hexOf(recordA.oscore!.masterSecret), printedA.oscore.masterSecret, 'the printed secret is the stored one');
    t.equal(hexOf(recordA.oscore!.masterSalt), printedA.oscore.masterSalt);
    t.notOk('secretHash' in recordA, 'no secret: the context is the device\'s credential');
    t.equal(recordA.security, undefined, 'not required by default');
    t.equal(devices.get('dev-b')!.security, 'oscore');
    t.ok(devices.get('dev-b')!.secretHash);
    t.equal(devices.has('nope'), false, 'refused commands added nothing');
    const bucket = join(state, 'devices', `${bucketOf('dev-a', DEFAULT_BUCKET_COUNT).toString(16).padStart(3, '0')}.json`);
    t.match(await readFile(bucket, 'utf8'), recordA.oscore!.masterSecret, 'this file holds the master secret');
    t.equal((await stat(bucket)).mode & 0o777, 0o600, 'and is 0600');
    t.equal(await idOfSender(state, printedA.oscore.senderId), 'dev-a', 'found by its Sender ID');
  });

  await t.test('a bulk add writes each context beside its secret, hex, into the devices file (0600)', async (t) => {
    t.equal(bulk.code, 0, bulk.stderr);
    t.match(bulk.stderr, /3 devices added \(sim-o-1 \.\. sim-o-3\); secrets and OSCORE contexts written to /);
    t.equal((await stat(out)).mode & 0o777, 0o600, 'a file that existed with 0644 is 0600 now');
    const fleet = JSON.parse(await readFile(out, 'utf8')) as { id: string; secret: string; oscore: Record<string, string> }[];
    const { devices } = await readStore(state);
    t.equal(fleet.length, 3);
    for (const entry of fleet) {
      t.strictSame(Object.keys(entry.oscore), ['senderId', 'recipientId', 'masterSecret', 'masterSalt'], `${entry.id}: the simulator's four fields`);
      t.match(entry, { secret: HEX(32), oscore: { senderId: HEX(1), recipientId: '', masterSecret: HEX(16), masterSalt: HEX(8) } });
      const record = devices.get(entry.id)!;
      t.equal(hexOf(record.oscore!.masterSecret), entry.oscore.masterSecret, `${entry.id}: the stored context`);
      t.equal(record.oscore!.senderId, entry.oscore.senderId);
    }
    const senders = [...devices.values()].flatMap((d) => (d.oscore ? [d.oscore.senderId] : []));
    t.equal(new Set(senders).size, 5, 'five contexts, five Sender IDs, across commands run at once');
  });

  const [again, forPlain, rotated, nobody, onlySecurity] = await Promise.all([
    runCli(['devices', 'oscore', 'dev-a', '--state', state]),
    runCli(['devices', 'oscore', 'plain', '--state', state]),
    runCli(['devices', 'oscore', 'dev-b', '--rotate', '--state', state]),
    runCli(['devices', 'oscore', 'nobody', '--state', state]),
    runCli(['devices', 'oscore', 'sim-o-1', '--security', 'oscore', '--state', state]),
  ]);
  let before: Map<string, DeviceRecord>;
  await t.test('devices oscore: refused without --rotate, made for a device without one, rotated with --rotate, or only --security', async (t) => {
    failsWithExit2(t, again, new RegExp(`device "dev-a" has an OSCORE context already \\(Sender ID ${printedA.oscore.senderId}\\): --rotate`), 'a second context without --rotate');
    t.equal(again.stdout, '', 'and nothing printed');
    failsWithExit2(t, nobody, /no device "nobody"/, 'an unknown device');

    t.equal(forPlain.code, 0, forPlain.stderr);
    const made = JSON.parse(forPlain.stdout) as Printed;
    t.match(made, { device: 'plain', oscore: { senderId: HEX(1), masterSecret: HEX(16) } });
    t.match(forPlain.stderr, /device "plain": OSCORE context made \(Sender ID [0-9a-f]{2}\), shown above only once; it may still use the gateway without OSCORE/);

    t.equal(rotated.code, 0, rotated.stderr);
    const next = JSON.parse(rotated.stdout) as Printed;
    t.equal(next.oscore.senderId, printedB.oscore.senderId, 'a rotated context keeps the device\'s Sender ID');
    t.not(next.oscore.masterSecret, printedB.oscore.masterSecret, 'with a new master secret');
    t.not(next.oscore.masterSalt, printedB.oscore.masterSalt, 'and salt');
    t.match(rotated.stderr, /OSCORE context rotated \(Sender ID [0-9a-f]{2}\), shown above only once; the old one is refused .*: the device needs the new one; it is refused without OSCORE/);

    t.equal(onlySecurity.code, 0, onlySecurity.stderr);
    t.equal(onlySecurity.stdout, '', '--security alone prints no context');
    t.match(onlySecurity.stderr, /device "sim-o-1": it is refused without OSCORE/);

    before = (await readStore(state)).devices;
    t.equal(hexOf(before.get('dev-b')!.oscore!.masterSecret), next.oscore.masterSecret, 'the store holds the rotated context');
    t.equal(before.get('sim-o-1')!.security, 'oscore');
    t.equal(await idOfSender(state, next.oscore.senderId), 'dev-b', 'still found by its Sender ID');
  });

  const [table, listed, revoked, removed] = await Promise.all([
    runCli(['devices', 'list', '--state', state]),
    runCli(['devices', 'list', '--json', '--state', state]),
    runCli(['devices', 'revoke', 'dev-b', '--state', state]),
    runCli(['devices', 'remove', 'dev-a', '--state', state]),
  ]);
  await t.test('devices list shows each device\'s Sender ID and security, never a master secret or salt', async (t) => {
    const secrets = [...before.values()].flatMap((d) => (d.oscore ? [d.oscore.masterSecret, d.oscore.masterSalt, hexOf(d.oscore.masterSecret), hexOf(d.oscore.masterSalt)] : []));
    t.equal(secrets.length, 24, 'six contexts held');
    for (const [text, what] of [[table.stdout, 'the table'], [listed.stdout, 'the JSON']] as const) {
      t.same(secrets.filter((secret) => text.includes(secret)), [], `${what} holds none of them`);
      t.notMatch(text, /masterSecret|masterSalt|generation/, `${what} names no secret field`);
    }
    const json = JSON.parse(listed.stdout) as { id: string; oscore?: { senderId: string; createdAt: string }; security?: string }[];
    const plainListed = json.find((d) => d.id === 'plain')!;
    t.strictSame(plainListed.oscore, { senderId: before.get('plain')!.oscore!.senderId, createdAt: before.get('plain')!.oscore!.createdAt },
      'a context is listed by its Sender ID and when it was made');
    t.equal(json.find((d) => d.id === 'sim-o-1')!.security, 'oscore');
    const rows = table.stdout.trim().split('\n').map((line) => line.split('\t'));
    t.same(rows[0], ['ID', 'SCOPES', 'SECRET', 'KEYS', 'STATE', 'CREATED', 'OSCORE', 'SECURITY']);
    t.same(rows.find((row) => row[0] === 'plain')!.slice(6), [before.get('plain')!.oscore!.senderId, 'any']);
    t.same(rows.find((row) => row[0] === 'sim-o-1')!.slice(6), [before.get('sim-o-1')!.oscore!.senderId, 'oscore']);
  });

  await t.test('revoke drops the context and says so; remove takes the index entry with it', async (t) => {
    t.equal(revoked.code, 0);
    const senderB = before.get('dev-b')!.oscore!.senderId;
    t.match(revoked.stderr, new RegExp(`its OSCORE context \\(Sender ID ${senderB}\\) is dropped: .*gateway devices oscore dev-b makes a new one`));
    t.equal(removed.code, 0);
    const { devices } = await readStore(state);
    t.equal(devices.get('dev-b')!.oscore, undefined, 'the revoked device has no context');
    t.not(devices.get('dev-b')!.recordId, before.get('dev-b')!.recordId, 'and its tokens are revoked as before');
    t.equal(await idOfSender(state, senderB), undefined, 'its Sender ID is no device\'s');
    t.equal(await idOfSender(state, printedA.oscore.senderId), undefined, 'nor the removed device\'s');
    const fresh = await runCli(['devices', 'oscore', 'dev-b', '--state', state]);
    t.equal(fresh.code, 0, 'a revoked device may be given a new context');
    const freshSender = (JSON.parse(fresh.stdout) as Printed).oscore.senderId;
    t.notOk([...before.values()].some((d) => d.oscore?.senderId === freshSender), 'under a Sender ID never handed out before (a dropped one stays spent)');
    t.equal(await idOfSender(state, freshSender), 'dev-b');
  });
});
