import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { missingCredential, readDevicesFile, type SecretCredentials } from './devices-file.ts';
import { SimError } from './errors.ts';

const run = promisify(execFile);
export const GATEWAY_BIN = fileURLToPath(new URL('../../gateway/bin/gateway.js', import.meta.url));

/** Runs one `gateway ...` CLI command, as an operator would, and returns its stdout. */
export async function gatewayCli(args: readonly string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [GATEWAY_BIN, ...args], { encoding: 'utf8' });
  return stdout;
}

/**
 * Provisions a simulated fleet as an operator does, `gateway devices add --count <count> --out
 * <file>` with `flags` (--prefix, --scope, --key-type, --state, --store), and returns the devices
 * the CLI wrote there. Each has a secret: the CLI makes one for every device of a --count, and
 * with --key-type a private key beside it.
 */
export async function addFleet(file: string, count: number, flags: readonly string[]): Promise<SecretCredentials[]> {
  await gatewayCli(['devices', 'add', '--count', String(count), '--out', file, ...flags]);
  const devices = await readDevicesFile(file);
  const missing = missingCredential(devices, 'secret');
  if (missing !== undefined) throw new SimError('SIM_ERR_DEVICES_FILE', `${file}: ${missing}`);
  return devices as SecretCredentials[];
}

export interface RunningGateway {
  port: number;
  /** The admin API's port, when the gateway serves one (it says so before the CoAP line). */
  adminPort: number | undefined;
  process: ChildProcess;
  /** SIGTERM, then the exit code once it has exited (a --cpu-prof profile is written then). */
  stop(): Promise<number | null>;
}

/**
 * Starts `gateway serve` as its own process and resolves with its CoAP port once it says it is
 * listening. Its JSON log (stdout) goes straight to `logFile`, not through this process, so a
 * load generator here pays nothing for the gateway's log lines; its few stderr lines are copied
 * there too. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export async function spawnGateway(
  args: readonly string[], logFile: string, nodeArgs: readonly string[] = [], env: Readonly<Record<string, string>> = {},
): Promise<RunningGateway> {
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeArgs, GATEWAY_BIN, 'serve', ...args],
    { stdio: ['ignore', out, 'pipe'], env: { ...process.env, ...env } });
  closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let adminPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      appendFileSync(logFile, `${line}\n`);
      const admin = /^gateway: admin API on .*:(\d+)$/.exec(line);
      if (admin !== null) adminPort = Number(admin[1]);
      const listening = /^gateway: CoAP on .*:(\d+),/.exec(line);
      if (listening !== null) resolve(Number(listening[1]));
    });
    void exited.then((code) => reject(new Error(`gateway exited with code ${code} before listening; see ${logFile}`)));
  });
  return {
    port,
    adminPort,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
