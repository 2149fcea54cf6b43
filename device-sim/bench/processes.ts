// Starting the processes a benchmark measures: the gateway (`gateway serve`), the HTTP backend
// and the echo servers (node-coap's and the raw node:dgram one), each in its own process, as an
// operator would run them.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type { SourceMapPayload } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { summarizeCpuProfile, type ProfileSummary, type ProfileWindow } from '../src/cpu-profile.ts';
import { spawnGateway } from '../src/spawn-gateway.ts';

/** Functions listed by self time in a gateway profile. */
const PROFILE_TOP_FUNCTIONS = 25;
/** Preloaded into a profiled gateway: writes SOURCE_MAPS_FILE next to the profile at exit. */
const KEEP_SOURCE_MAPS = fileURLToPath(new URL('./keep-source-maps.mjs', import.meta.url));
const SOURCE_MAPS_FILE = 'source-maps.json';
const DEVICE_SIM_BIN = fileURLToPath(new URL('../bin/device-sim.js', import.meta.url));

export interface Child {
  process: ChildProcess;
  pid: number;
  /** SIGTERM, then wait for the exit (a --cpu-prof profile is written then). */
  stop(): Promise<void>;
}

function track(child: ChildProcess): Child {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs a `device-sim` command in its own process and resolves with the JSON of its first line. */
async function startDeviceSimProcess(args: string[]): Promise<{ child: Child; first: Record<string, unknown> }> {
  const child = spawn(process.execPath, [DEVICE_SIM_BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    child.once('exit', (code) => reject(new Error(`device-sim ${args[0]} exited with ${code}`)));
  });
  lines.on('line', () => undefined);
  return { child: track(child), first };
}

/** The local HTTP backend, in its own process. */
export async function startBackendProcess(): Promise<Child & { url: string }> {
  const { child, first } = await startDeviceSimProcess(['backend', '--port', '0']);
  return { ...child, url: String(first.backend) };
}

/** The node-coap echo server (the ceiling), or with `raw` the node:dgram one (the floor), in its own process. */
export async function startEchoProcess(options: { raw?: boolean } = {}): Promise<Child & { port: number }> {
  const { child, first } = await startDeviceSimProcess(['echo-server', '--port', '0', ...(options.raw === true ? ['--raw'] : [])]);
  return { ...child, port: Number(first.coap) };
}

export interface GatewayProcess extends Child {
  port: number;
  logFile: string;
  /** The CPU profile summary (of `window` only, if given) after stop(), when started with a profile directory. */
  profile(window?: ProfileWindow): Promise<ProfileSummary | undefined>;
}

/**
 * `gateway serve` in its own process, as an operator runs it (default log level: a JSON line per
 * request, written to a file), on a port it picks itself.
 */
export async function startGatewayProcess(options: {
  stateDir: string; backendUrl: string; profileDir?: string; traceGc?: boolean; args?: string[];
}): Promise<GatewayProcess> {
  const logFile = join(options.stateDir, 'gateway.log');
  const nodeArgs = [
    ...(options.profileDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir, '--import', KEEP_SOURCE_MAPS] : []),
    ...(options.traceGc === true ? ['--trace-gc'] : []),
  ];
  const gateway = await spawnGateway(['--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', options.backendUrl,
    '--state', options.stateDir, ...(options.args ?? [])], logFile, nodeArgs,
    // A profile maps functions to their TypeScript files through tsx's source maps.
    options.profileDir !== undefined ? { GATEWAY_LOADER: 'tsx' } : {});
  return {
    process: gateway.process,
    pid: gateway.process.pid!,
    stop: async () => { await gateway.stop(); },
    port: gateway.port,
    logFile,
    async profile(window) {
      if (options.profileDir === undefined) return undefined;
      const files = await readdir(options.profileDir);
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: the main thread's (0), not the loader thread's.
      const profile = files.find((f) => /\.0\.\d+\.cpuprofile$/.test(f)) ?? files.find((f) => f.endsWith('.cpuprofile'));
      if (profile === undefined) return undefined;
      const sourceMaps = files.includes(SOURCE_MAPS_FILE)
        ? JSON.parse(await readFile(join(options.profileDir, SOURCE_MAPS_FILE), 'utf8')) as Record<string, SourceMapPayload>
        : undefined;
      return summarizeCpuProfile(join(options.profileDir, profile), { window, top: PROFILE_TOP_FUNCTIONS, sourceMaps });
    },
  };
}
