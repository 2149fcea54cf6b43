import { watch } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { addFleet, spawnGateway, type RunningGateway } from '../../device-sim/src/spawn-gateway.ts';
import { adminRequest, makeAdminPki, type ClientTls } from './admin-client.ts';
import { parsePrometheusText, type Exposition } from './admin-prometheus.ts';
import { startTestBackend, type TestBackend } from './test-backend.ts';

export interface GatewayProcessOptions {
  /** Keys for a `--config` file (those the CLI has no flag for: piggybackReplyMs, blockBufferBytes...). */
  config?: Record<string, unknown>;
  /** How many devices to provision (`dev-1`.. with telemetry:write and config:read) before it starts. */
  devices?: number;
  /** Turn the admin API on (a dev PKI in a temporary directory), for GET /metrics. */
  admin?: boolean;
  /** `--store` for the gateway and the CLI that provisions (a Redis URL: gateways of one fleet). */
  store?: string;
  /** Devices provisioned already (in the shared store): none are added, these are used. */
  provisioned?: readonly { id: string; secret: Buffer }[];
}

export interface GatewayProcess {
  /** The gateway's CoAP port on 127.0.0.1 (a new one after `restart`). */
  port: number;
  pid: number;
  /** Stops the process (SIGTERM) and starts it again with the same state and flags: what it held in memory is gone. */
  restart(): Promise<void>;
  backend: TestBackend;
  stateDir: string;
  logFile: string;
  devices: readonly { id: string; secret: Buffer }[];
  /** Still running: no exit code, no signal. */
  alive(): boolean;
  /** VmRSS of the gateway process from /proc, in KiB. */
  rssKb(): Promise<number>;
  /** Logs device `index` in over CoAP (node-coap) and returns its access token. */
  login(index?: number): Promise<string>;
  /** GET /metrics from the admin API, parsed (the process must have been started with `admin`). */
  metrics(): Promise<Exposition>;
  /** Any admin API request (the process must have been started with `admin`). */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }>;
  /** A device client on this gateway, closed after the test. */
  client(): Promise<DeviceClient>;
  /** A fresh socket logs in and makes a bridged request that must succeed. */
  assertStillServes(t: Test): Promise<void>;
  /** The gateway's JSON log lines so far. */
  logLines(): Promise<Record<string, unknown>[]>;
  /**
   * The first log line that matches, waiting for the log file to change while none does
   * (lines are written in batches, up to a quarter second late); undefined after `withinMs`.
   */
  logLine(matches: (line: Record<string, unknown>) => boolean, withinMs?: number): Promise<Record<string, unknown> | undefined>;
}

const STOP_LIMIT_MS = 5000;

/**
 * The real gateway, `gateway serve` in a process of its own (as operators run it), on an
 * ephemeral port on 127.0.0.1, bridged to a real HTTP backend in this process; devices
 * provisioned with the CLI. Everything is stopped and removed after the test.
 */
export async function startGatewayProcess(t: Test, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const stateDir = await mkdtemp(join(tmpdir(), 'gw-proc-'));
  const backend = await startTestBackend();
  const clients: DeviceClient[] = [];
  let running: RunningGateway | undefined;
  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.close()));
    if (running !== undefined) await stop(running);
    await backend.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const storeArgs = options.store !== undefined ? ['--store', options.store] : [];
  let devices = options.provisioned;
  if (devices === undefined) {
    devices = await addFleet(join(stateDir, 'provisioned.json'), options.devices ?? 2,
      ['--prefix', 'dev-', '--scope', 'telemetry:write', 'config:read', '--state', stateDir, ...storeArgs]);
  }

  const args = ['--coap-host', '127.0.0.1', '--coap-port', '0', '--backend', backend.url, '--state', stateDir, ...storeArgs];
  if (options.config !== undefined) {
    const configFile = join(stateDir, 'config.json');
    await writeFile(configFile, JSON.stringify(options.config));
    args.push('--config', configFile);
  }
  let adminTls: ClientTls | undefined;
  if (options.admin === true) {
    const pki = await makeAdminPki(t);
    adminTls = pki.client;
    args.push('--admin-port', '0', '--admin-cert', pki.config.adminCert, '--admin-key', pki.config.adminKey,
      '--admin-ca', pki.config.adminCa);
  }
  const logFile = join(stateDir, 'gateway.log');
  running = await spawnGateway(args, logFile);
  // The last line may be half written: only whole JSON lines count.
  const logLines = async () => (await readFile(logFile, 'utf8')).split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}')).map((line) => JSON.parse(line) as Record<string, unknown>);
  const logLine = async (matches: (line: Record<string, unknown>) => boolean, withinMs = 5000) => {
    // A change while the file is being read is remembered, so the last line written is never missed.
    let changed = false;
    let wake: (() => void) | undefined;
    const watcher = watch(logFile, () => { changed = true; wake?.(); });
    const deadline = setTimeout(() => wake?.(), withinMs);
    const until = Date.now() + withinMs;
    try {
      for (;;) {
        changed = false;
        const line = (await logLines()).find(matches);
        if (line !== undefined || Date.now() >= until) return line;
        if (!changed) await new Promise<void>((resolve) => { wake = resolve; });
        wake = undefined;
      }
    } finally {
      clearTimeout(deadline);
      watcher.close();
    }
  };
  const adminPort = running.adminPort;
  if (options.admin === true && adminPort === undefined) throw new Error('the gateway did not say where its admin API listens');

  const gateway: GatewayProcess = {
    port: running.port,
    pid: running.process.pid!,
    async restart() {
      await stop(running!);
      running = await spawnGateway(args, logFile);
      gateway.port = running.port;
      gateway.pid = running.process.pid!;
    },
    backend, stateDir, logFile, devices, logLines, logLine,
    alive: () => running!.process.exitCode === null && running!.process.signalCode === null,
    async rssKb() {
      const status = await readFile(`/proc/${running!.process.pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      if (m === null) throw new Error(`no VmRSS in /proc/${running!.process.pid}/status`);
      return Number(m[1]);
    },
    async login(index = 0) {
      const device = devices![index];
      if (device === undefined) throw new TypeError(`only ${devices!.length} devices provisioned`);
      const client = await DeviceClient.open('127.0.0.1', running!.port, { timeoutMs: 10_000 });
      clients.push(client);
      const { answer, tokens } = await client.login(device.id, device.secret);
      if (tokens === undefined) throw new Error(`login of ${device.id} failed: ${answer.code}`);
      return tokens.accessToken;
    },
    async admin(method, path, body) {
      if (running!.adminPort === undefined || adminTls === undefined) throw new TypeError('started without the admin API');
      const res = await adminRequest(running!.adminPort, method, path, { tls: adminTls, ...(body !== undefined ? { body } : {}) });
      return { status: res.status, text: res.text };
    },
    async client() {
      const client = await DeviceClient.open('127.0.0.1', running!.port, { timeoutMs: 10_000 });
      clients.push(client);
      return client;
    },
    async metrics() {
      if (running!.adminPort === undefined || adminTls === undefined) throw new TypeError('started without the admin API');
      const res = await adminRequest(running!.adminPort, 'GET', '/metrics', { tls: adminTls });
      if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
      return parsePrometheusText(res.text);
    },
    async assertStillServes(t2) {
      t2.ok(gateway.alive(), 'the gateway process is still running');
      const device = devices![devices!.length - 1]!;
      const client = await DeviceClient.open('127.0.0.1', running!.port, { timeoutMs: 10_000 });
      clients.push(client);
      const { answer, tokens } = await client.login(device.id, device.secret);
      t2.equal(answer.code, '2.01', 'gateway still logs devices in');
      const res = await client.send({ method: 'GET', path: '/config', token: tokens?.accessToken ?? null });
      t2.equal(res.code, '2.05', 'gateway still bridges a good request');
    },
  };
  return gateway;
}

/** SIGTERM, and SIGKILL when the process has not exited in time (a hung gateway must not hang the suite). */
async function stop(running: RunningGateway): Promise<void> {
  const child = running.process;
  const killer = setTimeout(() => child.kill('SIGKILL'), STOP_LIMIT_MS);
  await running.stop();
  clearTimeout(killer);
}
