// Assertion logins per second beside secret logins, same gateway process, same run, and jose's
// raw ES256 verification rate in this process for scale. A secret login costs the gateway a
// SHA-256 and one ES256 signature (the access token); an assertion login one ES256 verification
// more, and a jti spent in the store.
import { join } from 'node:path';
import { importJWK, jwtVerify } from 'jose';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { AuthRequestKey } from '../../gateway/src/wire/index.ts';
import { ASSERTION_LIFETIME_SEC, AssertionSigner } from '../src/device-assertion.ts';
import { DeviceClient } from '../src/device-client.ts';
import { addFleet } from '../src/spawn-gateway.ts';
import { emitResult, flag, round1, say, startBackendProcess, startGatewayProcess, tempDir } from './lib.ts';

const durationSec = Number(flag('duration') ?? 5);
const concurrency = Number(flag('concurrency') ?? 32);
const deviceCount = Number(flag('devices') ?? 200);

const state = await tempDir('bench-assertions-');
// Each device with a secret and an ES256 key pair, as the simulator's fleets are provisioned.
const fleet = (await addFleet(join(state.path, 'provisioned.json'), deviceCount, ['--key-type', 'ES256', '--state', state.path]))
  .map((d) => ({ ...d, signer: new AssertionSigner(d.privateJwk!) }));

const assertionOf = (d: (typeof fleet)[number]): Promise<string> =>
  d.signer.sign({ audience: DEFAULTS.audience, iatSec: Math.floor(Date.now() / 1000), lifetimeSec: ASSERTION_LIFETIME_SEC });

/** Closed loop: `concurrency` devices each send the next login as soon as the last is answered. */
async function loginLoop(port: number, seconds: number, body: (i: number) => Promise<Map<number, unknown>> | Map<number, unknown>) {
  const clients = await Promise.all(Array.from({ length: concurrency }, () => DeviceClient.open('127.0.0.1', port, { timeoutMs: 5000 })));
  let ok = 0;
  let other = 0;
  let next = 0;
  const latencies: number[] = [];
  const endAt = performance.now() + seconds * 1000;
  try {
    await Promise.all(clients.map(async (client) => {
      while (performance.now() < endAt) {
        const payload = await body(next++);
        const started = performance.now();
        const answer = await client.send({ method: 'POST', path: '/auth', body: payload }).catch(() => undefined);
        latencies.push(performance.now() - started);
        if (answer?.code === '2.01') ok += 1;
        else other += 1;
      }
    }));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  latencies.sort((a, b) => a - b);
  return { rps: ok / seconds, other, p99Ms: round1(latencies[Math.floor(latencies.length * 0.99)] ?? 0) };
}

const backend = await startBackendProcess();
const gateway = await startGatewayProcess({ stateDir: state.path, backendUrl: backend.url, args: ['--log-level', 'warn'] });
try {
  say(`gateway on 127.0.0.1:${gateway.port}; ${deviceCount} devices with a secret and an ES256 key, ${concurrency} in flight, ${durationSec} s each`);
  // Assertions are signed before the clock starts: the device's signing is not the gateway's cost.
  const needed = Math.ceil(durationSec * 4000);
  const signed: string[] = [];
  for (let i = 0; i < needed; i += 1) signed.push(await assertionOf(fleet[i % fleet.length]!));
  const secretBody = (i: number) => {
    const d = fleet[i % fleet.length]!;
    return new Map<number, unknown>([[AuthRequestKey.deviceId, d.id], [AuthRequestKey.secret, d.secret]]);
  };
  const assertionBody = async (i: number) => {
    const d = fleet[i % fleet.length]!;
    const assertion = signed[i] ?? await assertionOf(d);
    return new Map<number, unknown>([[AuthRequestKey.deviceId, d.id], [AuthRequestKey.assertion, assertion]]);
  };
  await loginLoop(gateway.port, 1, secretBody); // warm-up
  const secret = await loginLoop(gateway.port, durationSec, secretBody);
  const assertion = await loginLoop(gateway.port, durationSec, assertionBody);

  // jose's raw verification of the same kind of assertion, in this process, for scale.
  const sample = signed[0]!;
  const { d: _, ...publicJwk } = fleet[0]!.privateJwk!;
  const publicKey = await importJWK(publicJwk, 'ES256');
  let verified = 0;
  const verifyEnd = performance.now() + 1000;
  while (performance.now() < verifyEnd) {
    await jwtVerify(sample, publicKey, { algorithms: ['ES256'], audience: DEFAULTS.audience });
    verified += 1;
  }
  say(`secret logins:    ${Math.round(secret.rps)}/s (p99 ${secret.p99Ms} ms, ${secret.other} not 2.01)`);
  say(`assertion logins: ${Math.round(assertion.rps)}/s (p99 ${assertion.p99Ms} ms, ${assertion.other} not 2.01)`);
  say(`jose ES256 jwtVerify in one process: ${verified}/s`);
  emitResult({
    secret_login_rps: Math.round(secret.rps),
    assertion_login_rps: Math.round(assertion.rps),
    assertion_login_p99_ms: assertion.p99Ms,
    assertion_vs_secret_logins: Math.round((assertion.rps / secret.rps) * 100) / 100,
    jose_es256_verify_per_sec: verified,
    assertion_logins_vs_jose_verify: Math.round((assertion.rps / verified) * 100) / 100,
  });
} finally {
  await gateway.stop();
  await backend.stop();
  await state.remove();
}
