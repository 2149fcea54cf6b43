import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ErrorKey, WireError, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import { buildDemoBackend } from './demo-backend.ts';
import { framesFor } from './counting-socket.ts';
import { DeviceClient, tokenFormatOf, type AccessToken, type Tokens } from './device-client.ts';
import { replayDatagram } from './eavesdropper.ts';
import { DeviceOscoreContext, type OscoreHexCredentials } from './oscore-context.ts';
import { OscoreRefusal } from './oscore-messages.ts';
import { tamperToken } from './scenarios.ts';
import { gatewayCli, spawnGateway } from './spawn-gateway.ts';

export interface DemoOptions {
  devices: number;
  readings: number;
  /** Where `make certs` put the dev PKI; the backend runs HTTPS when it is there. */
  certsDir: string;
  /** The access token format the devices ask for (key 6); unset: none asked, the devices' default. */
  tokenFormat?: TokenFormatName | undefined;
  log: (line: string) => void;
}

export const DEFAULT_CERTS_DIR = fileURLToPath(new URL('../../certs/out', import.meta.url));
const TOKEN_TTL_SEC = 4;
const LEEWAY_SEC = 1;
/** The device the demo provisions with an OSCORE context, beside the others. */
const OSCORE_DEVICE = 'demo-oscore-01';
/** What `gateway devices add ID --oscore --with-secret` prints on stdout, once. */
interface OscoreProvisioned { device: string; oscore: OscoreHexCredentials; secret: string }

/**
 * The demo: provisions devices with the CLI, starts a demo backend (HTTPS with the dev CA,
 * verifying forwarded tokens against the gateway's JWKS) and a real `gateway serve` process,
 * then drives simulated devices over UDP. Returns the number of failed expectations.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { log } = options;
  const state = await mkdtemp(join(tmpdir(), 'coap-gateway-demo-'));
  const failures: string[] = [];
  const expect = (ok: boolean, what: string) => {
    log(`${ok ? '  ok  ' : '  FAIL'} ${what}`);
    if (!ok) failures.push(what);
  };

  log(`1. provisioning ${options.devices} devices with \`gateway devices add\``);
  const fleet: { id: string; secret: Buffer }[] = [];
  for (let i = 1; i <= options.devices; i += 1) {
    const id = `demo-sensor-${String(i).padStart(2, '0')}`;
    const secret = (await gatewayCli(['devices', 'add', id, '--scope', 'telemetry:write', 'config:read', '--state', state])).trim();
    fleet.push({ id, secret: Buffer.from(secret, 'hex') });
  }
  // One more, with an OSCORE security context (RFC 8613) printed once, as firmware would be given it.
  const printed = JSON.parse(await gatewayCli(['devices', 'add', OSCORE_DEVICE, '--oscore', '--with-secret',
    '--scope', 'telemetry:write', 'config:read', '--state', state])) as OscoreProvisioned;
  const oscoreDevice = { id: printed.device, secret: Buffer.from(printed.secret, 'hex'), oscore: DeviceOscoreContext.fromHex(printed.oscore) };
  log(`   and ${oscoreDevice.id} with \`gateway devices add ${oscoreDevice.id} --oscore --with-secret\`: `
    + `an OSCORE context (Sender ID ${printed.oscore.senderId || "''"}, 16-byte master secret, 8-byte salt) and a secret`);

  const tlsDir = options.certsDir;
  const https = existsSync(join(tlsDir, 'backend.cert.pem'));
  let jwks: { keys: object[] } | undefined;
  const backend = await buildDemoBackend({
    tls: https ? { key: readFileSync(join(tlsDir, 'backend.key.pem')), cert: readFileSync(join(tlsDir, 'backend.cert.pem')) } : undefined,
    jwks: async () => (jwks ??= JSON.parse(await gatewayCli(['keys', 'jwks', '--state', state])) as { keys: object[] }),
    issuer: 'coap-gateway',
    audience: 'coap-gateway',
  });
  log(`2. demo backend on ${backend.url}${https ? ' (TLS, dev CA)' : ' (plain HTTP: run `make certs` for TLS)'}, verifying tokens with the gateway's JWKS`);

  const logFile = join(state, 'gateway.log');
  const gateway = await spawnGateway([
    '--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', backend.url, '--state', state,
    '--token-ttl', String(TOKEN_TTL_SEC), '--leeway', String(LEEWAY_SEC),
    ...(https ? ['--backend-ca', join(tlsDir, 'ca.cert.pem')] : []),
  ], logFile);
  log(`3. gateway listening on coap://127.0.0.1:${gateway.port} (token TTL ${TOKEN_TTL_SEC} s, leeway ${LEEWAY_SEC} s)`);
  // The backend's keys now that the gateway has made them: read at the first reading instead (a
  // CLI process, seconds on a busy machine), they could come after the 4-second tokens expired.
  jwks = JSON.parse(await gatewayCli(['keys', 'jwks', '--state', state])) as { keys: object[] };

  const clients: DeviceClient[] = [];
  const request = { tokenFormat: options.tokenFormat };
  try {
    log('4. devices log in (POST /auth, CBOR) and send readings (POST /telemetry/temperature)');
    const sessions = await Promise.all(fleet.map(async ({ id, secret }) => {
      const client = await DeviceClient.open('127.0.0.1', gateway.port, { timeoutMs: 10_000 });
      clients.push(client);
      const { answer, tokens } = await client.login(id, secret, request);
      expect(answer.code === '2.01' && tokens !== undefined && (options.tokenFormat === undefined || tokenFormatOf(tokens.accessToken) === options.tokenFormat),
        `${id} logged in: ${answer.code}, ${tokens !== undefined ? tokenFormatOf(tokens.accessToken).toUpperCase() : 'no token'} of ${tokens?.accessToken.length ?? 0} bytes`);
      return { id, secret, client, tokens: tokens! };
    }));
    let sent = 0;
    let created = 0;
    let clearReadingBytes = 0;
    for (let r = 0; r < options.readings; r += 1) {
      await Promise.all(sessions.map(async (s, i) => {
        const celsius = Math.round((20 + i + Math.sin(r) * 2) * 10) / 10;
        const answer = await s.client.send({ method: 'POST', path: '/telemetry/temperature', body: { celsius, seq: r }, token: s.tokens.accessToken });
        sent += 1;
        if (answer.code === '2.01') created += 1;
        if (i === 0) clearReadingBytes = s.client.lastRequestDatagram?.length ?? 0;
      }));
    }
    expect(created === sent, `${created}/${sent} readings answered 2.01 Created`);
    const telemetry = backend.received.filter((q) => q.path.includes('/telemetry/'));
    expect(telemetry.length === sent, `backend received ${telemetry.length} readings as JSON, e.g. ${telemetry[0]?.method} ${telemetry[0]?.path} ${JSON.stringify(telemetry[0]?.body)}`);
    const config = await sessions[0]!.client.send({ path: '/config', token: sessions[0]!.tokens.accessToken });
    expect(config.code === '2.05', `GET /config -> ${config.code} ${JSON.stringify(Object.fromEntries(config.body as Map<string, unknown>))} (Max-Age ${config.maxAgeSec})`);

    log(`5. ${oscoreDevice.id} under OSCORE (RFC 8613): every request protected end to end, readings without a token`);
    const protectedClient = await DeviceClient.open('127.0.0.1', gateway.port, { timeoutMs: 10_000, oscore: oscoreDevice.oscore });
    clients.push(protectedClient);
    const clearBytes = clearReadingBytes;
    const beforeProtected = backend.received.length;
    let protectedCreated = 0;
    let protectedBytes = 0;
    for (let r = 0; r < options.readings; r += 1) {
      const answer = await protectedClient.send({ method: 'POST', path: '/telemetry/temperature', body: { celsius: Math.round((19 + Math.cos(r)) * 10) / 10, seq: r } });
      if (answer.code === '2.01' && answer.protection === 'oscore') protectedCreated += 1;
      protectedBytes = protectedClient.lastRequestDatagram?.length ?? 0;
    }
    const recoveries = protectedClient.oscoreStats().echoRecoveries;
    expect(protectedCreated === options.readings, `${protectedCreated}/${options.readings} protected readings answered 2.01, each answer verified `
      + `(the first after ${recoveries} Echo round trip: the gateway held no replay window for the new context)`);
    const arrived = backend.received.slice(beforeProtected).filter((q) => q.path.includes('/telemetry/'));
    expect(arrived.length === options.readings && arrived.every((q) => q.sec === 'oscore' && q.deviceId === oscoreDevice.id),
      `backend received ${arrived.length} readings from ${oscoreDevice.id}, each JWT with sec=oscore`);
    log(`   a reading: ${protectedBytes} bytes on the wire under OSCORE, no token (${framesFor(protectedBytes)} 802.15.4 frame); `
      + `${clearBytes} bytes in clear with the ${tokenFormatOf(sessions[0]!.tokens.accessToken).toUpperCase()} (${framesFor(clearBytes)} frames), `
      + 'its path, token and reading readable by anyone in range (both with node-coap\'s 8-byte CoAP token)');
    const recorded = protectedClient.lastRequestDatagram!;
    const protectedConfig = await protectedClient.send({ path: '/config' });
    expect(protectedConfig.code === '2.05' && protectedConfig.protection === 'oscore', `GET /config under OSCORE, no token: ${protectedConfig.code} (the device record's scopes)`);
    const beforeReplay = backend.received.length;
    const replayed = await replayDatagram('127.0.0.1', gateway.port, recorded, 10_000);
    expect(replayed.code === OscoreRefusal.replay.code && errorCode(replayed.body) === OscoreRefusal.replay.wireError
      && backend.received.length === beforeReplay,
    `its last reading, copied off the air and sent again from another address -> ${replayed.code} (wire error ${errorCode(replayed.body)}: replay), backend untouched`);
    const oscoreLogin = await protectedClient.login(oscoreDevice.id, oscoreDevice.secret, request);
    expect(oscoreLogin.answer.code === '2.01' && oscoreLogin.answer.protection === 'oscore',
      `${oscoreDevice.id} logs in under OSCORE: ${oscoreLogin.answer.code} (its secret and its token never cross the radio in clear)`);

    log('6. a tampered token (its signature changed) is refused');
    const tamperedToken = tamperToken(sessions[0]!.tokens.accessToken);
    const beforeTampered = backend.received.length;
    const tampered = await sessions[0]!.client.send({ method: 'POST', path: '/telemetry/temperature', body: { celsius: 99 }, token: tamperedToken });
    expect(tampered.code === '4.01' && errorCode(tampered.body) === WireError.tokenInvalid && backend.received.length === beforeTampered,
      `tampered token -> ${tampered.code} (wire error ${errorCode(tampered.body)}), backend untouched`);

    log(`7. an expired token is refused (waiting out TTL + leeway, ${TOKEN_TTL_SEC + LEEWAY_SEC} s), then the device refreshes`);
    const late = sessions[1 % sessions.length]!;
    await waitUntilExpired(late.tokens);
    const expired = await late.client.send({ method: 'POST', path: '/telemetry/temperature', body: { celsius: 21 }, token: late.tokens.accessToken });
    expect(expired.code === '4.01' && errorCode(expired.body) === WireError.tokenExpired,
      `expired token -> ${expired.code} (wire error ${errorCode(expired.body)}: token expired)`);
    const refreshed = await late.client.refresh(late.tokens.refreshToken, request);
    const again = await late.client.send({ method: 'POST', path: '/telemetry/temperature', body: { celsius: 21 }, token: refreshed.tokens?.accessToken ?? null });
    expect(refreshed.answer.code === '2.01' && again.code === '2.01', `refresh -> ${refreshed.answer.code}, next reading -> ${again.code}`);

    log('8. a forged token sent straight to the backend is refused by the backend itself');
    expect(await backendRefusesForgery(backend.url, https ? readFileSync(join(tlsDir, 'ca.cert.pem')) : undefined),
      `backend refused a self-signed token (refused so far: ${backend.refusedCount()})`);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    const code = await gateway.stop();
    await backend.close();
    log(`9. gateway stopped (exit ${code})`);
    // The state holds the demo devices' secrets and the signing keys: keep it only to debug a failure.
    if (failures.length === 0) await rm(state, { recursive: true, force: true });
    else log(`   state and gateway log kept in ${state}`);
  }
  log('');
  log(failures.length === 0
    ? `demo passed: ${options.devices} devices, ${options.devices * options.readings} readings bridged, expired and tampered tokens refused; `
      + `${OSCORE_DEVICE} under OSCORE, ${options.readings} protected readings, a replayed datagram refused`
    : `demo FAILED: ${failures.length} expectation(s) not met: ${failures.join('; ')}`);
  return failures.length;
}

function errorCode(body: unknown): unknown {
  return body instanceof Map ? body.get(ErrorKey.code) : undefined;
}

async function waitUntilExpired(tokens: Tokens<AccessToken>): Promise<void> {
  const expiresAtMs = (tokens.serverTimeSec + tokens.expiresInSec + LEEWAY_SEC + 1) * 1000;
  await delay(Math.max(0, expiresAtMs - Date.now()));
}

async function backendRefusesForgery(url: string, ca: Buffer | undefined): Promise<boolean> {
  const { generateKeyPair, SignJWT } = await import('jose');
  const { privateKey } = await generateKeyPair('ES256');
  const forged = await new SignJWT({ scope: 'telemetry:write' })
    .setProtectedHeader({ alg: 'ES256', kid: 'forged' }).setIssuer('coap-gateway').setAudience('coap-gateway')
    .setSubject('demo-sensor-01').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const { Agent, request } = await import('undici');
  const dispatcher = ca !== undefined ? new Agent({ connect: { ca } }) : undefined;
  try {
    const res = await request(`${url}/devices/demo-sensor-01/telemetry/temperature`, {
      method: 'POST',
      headers: { authorization: `Bearer ${forged}`, 'x-device-id': 'demo-sensor-01', 'content-type': 'application/json' },
      body: '{"celsius":-40}',
      dispatcher,
    });
    await res.body.dump();
    return res.statusCode === 401;
  } finally {
    await dispatcher?.close();
  }
}
