import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Test } from 'tap';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { generateSecret, hashSecret, newRecordId } from '../../gateway/src/auth/index.ts';
import { loadConfig, type ConfigInput } from '../../gateway/src/config/index.ts';
import { buildGateway, type Gateway } from '../../gateway/src/gateway.ts';
import { REDACT_PATHS } from '../../gateway/src/log/index.ts';
import { startTestBackend, type TestBackend } from './test-backend.ts';

export interface Harness {
  gateway: Gateway;
  port: number;
  backend: TestBackend;
  stateDir: string;
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  /** The gateway's clock: real time plus what tests add, so time moves without sleeping. */
  clock: { nowMs(): number; advanceSec(sec: number): void };
  provision(id: string, scopes?: string[]): Promise<Buffer>;
  device(): Promise<DeviceClient>;
  /** Logs a fresh device in and makes a request that must succeed: the gateway still serves. */
  assertStillServes(t: Test): Promise<void>;
}

export interface HarnessOptions {
  config?: ConfigInput;
  backendTls?: { key: string; cert: string };
}

/** A real gateway on an ephemeral UDP port, bridged to a real HTTP server; all torn down after the test. */
export async function startHarness(t: Test, options: HarnessOptions = {}): Promise<Harness> {
  const stateDir = await mkdtemp(join(tmpdir(), 'gw-test-'));
  const backend = await startTestBackend(options.backendTls);
  let offsetMs = 0;
  const clock = { nowMs: () => Date.now() + offsetMs, advanceSec: (sec: number) => { offsetMs += sec * 1000; } };
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  const config = loadConfig({}, { coapHost: '127.0.0.1', coapPort: 0, backend: backend.url, state: stateDir, ...options.config });
  const gateway = await buildGateway(config, { logger, nowMs: clock.nowMs });
  await gateway.start();
  const devices: DeviceClient[] = [];
  t.teardown(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await gateway.close();
    await backend.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  const port = gateway.address().port;
  const deviceHost = config.coap.host.includes(':') ? '::1' : '127.0.0.1';

  const harness: Harness = {
    gateway, port, backend, stateDir, logs, clock,
    async provision(id, scopes = ['telemetry:write', 'config:read']) {
      const secret = generateSecret();
      await gateway.store.devices.add([{
        id, secretHash: hashSecret(secret), scopes, createdAt: new Date(clock.nowMs()).toISOString(), recordId: newRecordId(),
      }]);
      return secret;
    },
    async device() {
      const client = await DeviceClient.open(deviceHost, port);
      devices.push(client);
      return client;
    },
    async assertStillServes(t2) {
      const id = `healthy-${devices.length}-${Math.random().toString(36).slice(2, 8)}`;
      const secret = await harness.provision(id);
      const client = await harness.device();
      const { answer, tokens } = await client.login(id, secret);
      t2.equal(answer.code, '2.01', 'gateway still logs devices in');
      const res = await client.send({ method: 'GET', path: '/config', token: tokens?.accessToken ?? null });
      t2.equal(res.code, '2.05', 'gateway still bridges a good request');
    },
  };
  return harness;
}
