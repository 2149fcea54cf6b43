// Shared by the benchmark scenarios (one scenario per file, each run in a fresh process by
// `device-sim bench`). Bench code may use gateway internals to provision quickly and to sign
// tokens; the simulator itself (device-sim/src) only uses the wire contract.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keystore, createTokenIssuer, generateSecret, hashSecret, newRecordId, recordIdOf } from '../../gateway/src/auth/index.ts';
import { DEFAULTS, parseStoreSetting } from '../../gateway/src/config/index.ts';
import { buildFileStore, openStore } from '../../gateway/src/store/index.ts';
import type { SecretCredentials } from '../src/devices-file.ts';
import { formatFleetReport, type FleetReport } from '../src/report.ts';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { printProfile } from './measure.ts';
import { startBackendProcess, startGatewayProcess } from './processes.ts';

export * from './measure.ts';
export * from './processes.ts';

export const RESULT_PREFIX = 'BENCH_RESULT ';

export const say = (line: string) => process.stdout.write(`${line}\n`);

/** The scenario's figures, on one line the runner picks up. */
export function emitResult(result: Record<string, unknown>): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

export function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export function printReport(title: string, report: FleetReport): void {
  say(`${title}:`);
  for (const line of formatFleetReport(report)) say(`  ${line}`);
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Ids as `gateway devices add --count` names them. */
export function fleetIds(count: number, prefix = 'sim-'): string[] {
  const width = String(count).length;
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

/** Devices per store write when provisioning into Redis: one script call each, not one of 100,000 ids. */
const REDIS_PROVISION_BATCH = 10_000;

/**
 * Provisions devices in as few store writes as it can (what `gateway devices add --count` does,
 * without 100k CLI calls), into the file store in `stateDir` or, with `store` a Redis URL (as
 * `gateway serve --store` takes it), into Redis under the gateway's default key prefix.
 */
export async function provision(stateDir: string, count: number, scopes = ['telemetry:write'], store = 'file'): Promise<SecretCredentials[]> {
  const opened = await openStore(parseStoreSetting(store), { stateDir });
  try {
    const createdAt = new Date().toISOString();
    const fleet = fleetIds(count).map((id) => ({ id, secret: generateSecret() }));
    const records = fleet.map(({ id, secret }) => ({ id, secretHash: hashSecret(secret), scopes, createdAt, recordId: newRecordId() }));
    const batch = opened.kind === 'redis' ? REDIS_PROVISION_BATCH : records.length;
    for (let i = 0; i < records.length; i += batch) await opened.devices.add(records.slice(i, i + batch));
    return fleet;
  } finally {
    await opened.close();
  }
}

/** A token exactly like the gateway's (same claims, same key type), for the echo server's requests. */
export async function gatewayLikeToken(sub: string): Promise<string> {
  const dir = await tempDir('bench-keys-');
  try {
    const keystore = await Keystore.open({ dir: dir.path, signingAlg: DEFAULTS.signingAlg, maxTokenLifetimeSec: 3600, nowMs: Date.now }, true);
    const issuer = createTokenIssuer({ keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
      ttlSec: DEFAULTS.tokenTtlSec, nowMs: Date.now });
    return (await issuer.issue({ id: sub, scopes: ['telemetry:write'], recordId: newRecordId() })).accessToken;
  } finally {
    await dir.remove();
  }
}

export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** A keystore, a store with one device, and a token the gateway issued to it: what the verify benchmarks need. */
export async function tokenFixture(): Promise<{
  token: string; keystore: Keystore; store: Awaited<ReturnType<typeof buildFileStore>>; issue(sub: string, format?: 'jwt' | 'cwt'): Promise<string>;
  remove(): Promise<void>;
}> {
  const dir = await tempDir('bench-verify-');
  const keystore = await Keystore.open({ dir: join(dir.path, 'keys'), signingAlg: DEFAULTS.signingAlg, maxTokenLifetimeSec: 3600, nowMs: Date.now }, true);
  const store = await buildFileStore(dir.path);
  const ids = fleetIds(10_000);
  const createdAt = new Date().toISOString();
  await store.devices.add(ids.map((id) => ({ id, secretHash: hashSecret(generateSecret()), scopes: ['telemetry:write'], createdAt })));
  const issuer = createTokenIssuer({ keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
    ttlSec: DEFAULTS.tokenTtlSec, nowMs: Date.now });
  const issue = async (sub: string, format: 'jwt' | 'cwt' = 'jwt') =>
    (await issuer.issue({ id: sub, scopes: ['telemetry:write'], recordId: recordIdOf((await store.devices.get(sub))!) }, undefined, format))
      .accessToken;
  return { token: await issue(ids[0]!), keystore, store, issue, remove: dir.remove };
}

/**
 * What the gateway scenarios share: --devices provisioned devices, a backend process and a
 * `gateway serve` process (with --profile under --cpu-prof; --gateway-args passes extra flags,
 * e.g. '--log-level warn').
 */
export async function startGatewayScenario(statePrefix: string, options: { traceGcWhileProfiling: boolean }) {
  const deviceCount = Number(flag('devices') ?? 1000);
  const profile = hasFlag('profile');
  const gatewayArgs = (flag('gateway-args') ?? '').split(' ').filter(Boolean);
  const state = await tempDir(statePrefix);
  const devices = await provision(state.path, deviceCount);
  const backend = await startBackendProcess();
  const gateway = await startGatewayProcess({
    stateDir: state.path, backendUrl: backend.url, traceGc: !profile || options.traceGcWhileProfiling, args: gatewayArgs,
    profileDir: profile ? join(state.path, 'profile') : undefined,
  });
  return {
    deviceCount, profile, gatewayArgs, state, devices, backend, gateway,
    /** Stops both processes, reports the gateway's profile (of `window`) under `profileKey`, removes the state. */
    async finish(profileKey: string, window: Promise<ProfileWindow | undefined>): Promise<void> {
      await gateway.stop();
      await backend.stop();
      if (profile) {
        const summary = await gateway.profile(await window);
        printProfile(summary);
        if (summary !== undefined) emitResult({ [profileKey]: summary });
      }
      await state.remove();
    },
  };
}
