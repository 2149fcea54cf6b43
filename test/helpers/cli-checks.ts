import type { Test } from 'tap';
import { buildFileStore, type DeviceRecord, type Revocation } from '../../gateway/src/store/index.ts';
import { runCli, type CliResult } from './cli-run.ts';

// What the CLI tests check after a command: the registry as the CLI lists it, the store as a
// gateway reads it, and a refusal's exit code and message.

/** A device as `devices list --json` lists it. */
export type Listed = { id: string; secret: boolean; keys: { kid: string; alg: string; expiresAt?: string }[]; disabled?: boolean };
export async function devicesJson(state: string): Promise<Listed[]> {
  const listed = await runCli(['devices', 'list', '--json', '--state', state]);
  return JSON.parse(listed.stdout) as Listed[];
}

/** What the file store in `state` holds, read through its ports as a gateway would. */
export async function readStore(state: string): Promise<{ devices: Map<string, DeviceRecord>; revocations: Revocation[] }> {
  const store = await buildFileStore(state);
  try {
    const devices = new Map<string, DeviceRecord>();
    for await (const batch of store.devices.list()) for (const record of batch) devices.set(record.id, record);
    return { devices, revocations: await store.revocations.list(Math.floor(Date.now() / 1000)) };
  } finally {
    await store.close();
  }
}

export function failsWithExit2(t: Test, result: CliResult, message: RegExp, what: string): void {
  t.equal(result.code, 2, `${what}: exit 2`);
  t.match(result.stderr, message, `${what}: says why`);
  t.notMatch(result.stderr, /unexpected error|\n\s+at /, `${what}: a message, not a stack trace`);
}
