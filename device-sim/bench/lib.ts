// Shared by the benchmark scenarios (one scenario per file, each run in a fresh process by
// `device-sim bench`). Scenarios drive the gateway as devices and operators do: over the wire,
// and through the CLI to provision. A figure of one part of the gateway on purpose (the verifier,
// the CBOR mapping, the file store with a million devices) imports that part's folder index.ts,
// never a file behind it; the simulator itself (device-sim/src) only uses the wire contract.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecretCredentials } from '../src/devices-file.ts';
import { formatFleetReport, type FleetReport } from '../src/report.ts';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { addFleet } from '../src/spawn-gateway.ts';
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

/**
 * `gateway devices add --count` adds the whole fleet in one store call; into Redis that is one
 * script, which for 100,000 devices outlasts the default command timeout (1 s).
 */
const PROVISION_COMMAND_TIMEOUT_MS = 120_000;

/**
 * Provisions `count` devices (`sim-...`) as an operator does, with one `gateway devices add
 * --count`: into the file store in `stateDir` or, with `store` a Redis URL (as `gateway serve
 * --store` takes it), into Redis under the gateway's default key prefix. `extra` are more flags
 * of that command (`--oscore`: each device gets an OSCORE context too).
 */
export async function provision(stateDir: string, count: number, scopes = ['telemetry:write'], store = 'file',
  extra: readonly string[] = []): Promise<SecretCredentials[]> {
  const flags = ['--prefix', 'sim-', '--scope', ...scopes, '--state', stateDir, ...extra];
  if (store !== 'file') {
    // The CLI reads the object form of `store`, with its timeouts, from a gateway config file.
    const config = join(stateDir, 'provision-config.json');
    await writeFile(config, JSON.stringify({ store: { kind: 'redis', url: store, commandTimeoutMs: PROVISION_COMMAND_TIMEOUT_MS } }));
    flags.push('--config', config);
  }
  return addFleet(join(stateDir, 'provisioned.json'), count, flags);
}

export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/**
 * What the gateway scenarios share: --devices provisioned devices, a backend process and a
 * `gateway serve` process (with --profile under --cpu-prof; --gateway-args passes extra flags,
 * e.g. '--log-level warn').
 */
export async function startGatewayScenario(statePrefix: string, options: {
  traceGcWhileProfiling: boolean;
  /** Provisioning as `gateway devices add --count` takes it: the scopes, more flags (`--oscore`). */
  scopes?: string[];
  provisionFlags?: readonly string[];
}) {
  const deviceCount = Number(flag('devices') ?? 1000);
  const profile = hasFlag('profile');
  const gatewayArgs = (flag('gateway-args') ?? '').split(' ').filter(Boolean);
  const state = await tempDir(statePrefix);
  const devices = await provision(state.path, deviceCount, options.scopes, 'file', options.provisionFlags);
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
