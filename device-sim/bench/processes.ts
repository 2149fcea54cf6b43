// Starting the processes a benchmark measures: the gateway (`gateway serve`), the HTTP backend
// and the echo servers (node-coap's and the raw node:dgram one), each in its own process, as an
// operator would run them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { SourceMapPayload } from 'node:module';
import { tmpdir } from 'node:os';
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

/** Debian's package (`make tools` installs it), as the Redis store tests run it. */
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
// 'Ready to accept connections' (TCP), 'The server is now ready to accept connections at <socket>' (unix only).
const REDIS_READY_LINE = /ready to accept connections/i;
/** Failure guards, never sync points: readiness is read from the server's own log. */
const REDIS_START_LIMIT_MS = 10_000;
const REDIS_STOP_LIMIT_MS = 5000;

export interface RedisProcess extends Child {
  /** `redis+unix://<socket>`, what `gateway serve --store` takes. */
  url: string;
}

/**
 * A redis-server of the benchmark's own: a unix socket in a fresh temporary directory, no TCP
 * port, no persistence. stop() ends it (SIGKILL if SIGTERM has not within 5 s) and removes the directory.
 */
export async function startRedisProcess(): Promise<RedisProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-redis-'));
  const socketPath = join(dir, 'redis.sock');
  const child = spawn(REDIS_SERVER, ['--port', '0', '--unixsocket', socketPath, '--unixsocketperm', '700', '--save', '',
    '--appendonly', 'no', '--dir', dir, '--loglevel', 'notice'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const guard = setTimeout(() => reject(new Error(`redis-server not ready after ${REDIS_START_LIMIT_MS} ms:\n${output}`)), REDIS_START_LIMIT_MS);
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(guard);
        reject(err.code === 'ENOENT' ? new Error(`${REDIS_SERVER} not found: install the Debian package redis-server (make tools does)`) : err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(guard);
        reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`));
      });
      const read = (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (!REDIS_READY_LINE.test(output)) return;
        clearTimeout(guard);
        resolve();
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // From here on its log is drained and dropped.
  child.stdout.removeAllListeners('data').resume();
  child.stderr.removeAllListeners('data').resume();
  child.removeAllListeners('exit');
  child.on('error', () => undefined);
  const tracked = track(child);
  return {
    ...tracked,
    url: `redis+unix://${socketPath}`,
    async stop() {
      const killer = setTimeout(() => child.kill('SIGKILL'), REDIS_STOP_LIMIT_MS);
      await tracked.stop();
      clearTimeout(killer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The files `gateway serve --admin-*` needs: the admin API, for GET /metrics. */
export interface AdminFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export interface GatewayProcess extends Child {
  port: number;
  /** The admin API's port, when started with `admin`. */
  adminPort: number | undefined;
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
  /** `--store`: file (the default) or a Redis URL. */
  store?: string;
  /** Serve the admin API on a free loopback port with these files. */
  admin?: AdminFiles;
}): Promise<GatewayProcess> {
  const logFile = join(options.stateDir, 'gateway.log');
  const nodeArgs = [
    ...(options.profileDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir, '--import', KEEP_SOURCE_MAPS] : []),
    ...(options.traceGc === true ? ['--trace-gc'] : []),
  ];
  const gateway = await spawnGateway(['--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', options.backendUrl,
    '--state', options.stateDir, ...(options.store !== undefined ? ['--store', options.store] : []),
    ...(options.admin !== undefined
      ? ['--admin-port', '0', '--admin-cert', options.admin.certFile, '--admin-key', options.admin.keyFile, '--admin-ca', options.admin.caFile]
      : []),
    ...(options.args ?? [])], logFile, nodeArgs,
    // A profile maps functions to their TypeScript files through tsx's source maps.
    options.profileDir !== undefined ? { GATEWAY_LOADER: 'tsx' } : {});
  return {
    process: gateway.process,
    pid: gateway.process.pid!,
    stop: async () => { await gateway.stop(); },
    port: gateway.port,
    adminPort: gateway.adminPort,
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
