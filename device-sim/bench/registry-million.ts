// The `file` store with a million provisioned devices: how long a store takes to open, what adding
// or removing one device costs (in this process, and as a `gateway devices add` from start to exit), the
// memory a store holds, and the longest event-loop stall in a gateway-like store instance while
// another process adds and removes devices (`longest_stall_ms`), beside the same probe while that
// writer works on a directory the store does not watch (`stall_floor_ms`: what a busy neighbour
// costs on this machine). Provisioning and the writers run in child processes of this file, so
// the measuring process holds nothing but its store. Figures are printed as one JSON object on
// stdout (progress on stderr); nothing is asserted.
// Run: node --import tsx device-sim/bench/registry-million.ts [--devices 1000000] [--churn 200] [--no-migrate]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildFileStore, forEachLimited, type DeviceRecord, type StoreChange } from '../../gateway/src/store/index.ts';
import { GATEWAY_BIN } from '../src/spawn-gateway.ts';
import { flag, fleetIds, hasFlag, tempDir } from './lib.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
const ms = (since: number) => Math.round((performance.now() - since) * 10) / 10;
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const SCOPES = ['telemetry:write'];

function fleetRecords(count: number, prefix: string): DeviceRecord[] {
  const createdAt = new Date().toISOString();
  const random = randomBytes(count * 48);
  return fleetIds(count, prefix).map((id, i) => ({
    id,
    secretHash: random.subarray(i * 48, i * 48 + 32).toString('base64url'),
    scopes: SCOPES,
    createdAt,
    recordId: random.subarray(i * 48 + 32, i * 48 + 48).toString('base64url'),
  }));
}

/** Provisions `count` devices through the store's bulk path, in its own process (the gateway-like one stays clean). */
async function provision(stateDir: string, count: number): Promise<void> {
  let at = performance.now();
  const records = fleetRecords(count, 'sim-');
  const generateMs = ms(at);
  at = performance.now();
  const store = await buildFileStore(stateDir);
  await store.devices.add(records);
  await store.close();
  process.stdout.write(`${JSON.stringify({ generate_ms: generateMs, provision_ms: ms(at), max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`);
}

/** A CLI-like process: opens the store, adds and removes `churn` devices one at a time, reports. */
async function writer(stateDir: string, churn: number): Promise<void> {
  const started = performance.now();
  const store = await buildFileStore(stateDir);
  const openMs = ms(started);
  const addMs: number[] = [];
  const removeMs: number[] = [];
  for (let i = 0; i < churn; i += 1) {
    let at = performance.now();
    await store.devices.add(fleetRecords(1, `churn-${i}-`));
    addMs.push(ms(at));
    at = performance.now();
    await store.devices.remove(`churn-${i}-1`);
    removeMs.push(ms(at));
  }
  // One bulk add and its removal: the journal says `resync` once instead of a line per device.
  let at = performance.now();
  const bulk = fleetRecords(10_000, 'bulk-');
  await store.devices.add(bulk);
  const bulkAddMs = ms(at);
  at = performance.now();
  for (const record of bulk.slice(0, 100)) await store.devices.remove(record.id);
  const remove100Ms = ms(at);
  await store.close();
  const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
  const median = (values: number[]) => sorted(values)[Math.floor(values.length / 2)] ?? 0;
  process.stdout.write(`${JSON.stringify({
    open_ms: openMs,
    add_one_ms_median: median(addMs), add_one_ms_max: Math.max(0, ...addMs),
    remove_one_ms_median: median(removeMs), remove_one_ms_max: Math.max(0, ...removeMs),
    bulk_add_10000_ms: bulkAddMs, remove_100_ms: remove100Ms,
    rss_mb: mb(process.memoryUsage().rss), max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  })}\n`);
}

/**
 * Runs a child process, resolving with its stdout and its wall time from spawn to exit. Its
 * stderr (the CLI's "device added" line) is shown only when it fails.
 */
function runProcess(args: string[]): Promise<{ wallMs: number; out: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${args.slice(-4).join(' ')} exited with ${code}: ${err.slice(0, 2000)}`));
      else resolve({ wallMs: ms(started), out });
    });
  });
}

/** Runs this file as a child (`--writer`, `--provision`), resolving with its JSON and its wall time. */
async function runChild(args: string[]): Promise<{ wallMs: number; result: Record<string, number> }> {
  const { wallMs, out } = await runProcess([...process.execArgv, fileURLToPath(import.meta.url), ...args]);
  return { wallMs, result: JSON.parse(out) as Record<string, number> };
}

/**
 * The longest time the event loop was late, from perf_hooks' timer-based sampler (1 ms). Not a
 * busy setImmediate chain: on a small machine that takes a core from the writer it measures.
 */
function stallProbe(): { stop(): number } {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  return {
    stop() {
      histogram.disable();
      return Math.round(histogram.max / 1e5) / 10;
    },
  };
}

async function bucketBytes(dir: string): Promise<{ files: number; bytes: number }> {
  const names = await readdir(dir);
  let bytes = 0;
  for (const name of names) bytes += (await stat(join(dir, name))).size;
  return { files: names.length, bytes };
}

async function main(): Promise<void> {
  const devices = Number(flag('devices') ?? 1_000_000);
  const churn = Number(flag('churn') ?? 200);
  log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`);
  const state = await tempDir('bench-registry-');
  const figures: Record<string, unknown> = { node: process.version, cpu: cpus()[0]?.model, cpus: cpus().length, devices };
  try {
    const provisioned = await runChild(['--provision', state.path, '--devices', String(devices)]);
    figures.provision = { ...provisioned.result, process_wall_ms: provisioned.wallMs };
    log(`provisioned ${devices} devices: ${JSON.stringify(figures.provision)}`);
    const disk = await bucketBytes(join(state.path, 'devices'));
    figures.bucket_files = disk.files;
    figures.bucket_mb = mb(disk.bytes);
    figures.rss_mb_before_open = mb(process.memoryUsage().rss);

    let at = performance.now();
    const gateway = await buildFileStore(state.path);
    figures.open_ms = ms(at);
    figures.rss_mb_store_open = mb(process.memoryUsage().rss);
    at = performance.now();
    figures.count = await gateway.devices.count();
    figures.count_ms = ms(at);
    const width = String(devices).length;
    const someId = () => `sim-${String(1 + Math.floor(Math.random() * devices)).padStart(width, '0')}`;
    at = performance.now();
    for (let i = 0; i < 1000; i += 1) await gateway.devices.get(someId());
    figures.get_ms_mean = Math.round(ms(at)) / 1000;
    at = performance.now();
    await gateway.devices.add(fleetRecords(1, 'one-'));
    figures.add_one_ms = ms(at);
    at = performance.now();
    await gateway.devices.remove('one-1');
    figures.remove_one_ms = ms(at);

    // A gateway-like view: re-reads each changed device, and on a resync the thousand it "holds".
    const held = Array.from({ length: Math.min(1000, devices) }, (_, i) => `sim-${String(i + 1).padStart(width, '0')}`);
    let heard = 0;
    let resyncs = 0;
    let refreshing: Promise<unknown> = Promise.resolve();
    gateway.subscribe((change: StoreChange) => {
      heard += 1;
      if (change.kind === 'device') refreshing = refreshing.then(() => gateway.devices.get(change.id));
      if (change.kind === 'resync') {
        resyncs += 1;
        refreshing = refreshing.then(() => forEachLimited(held, 16, async (id) => { await gateway.devices.get(id); }));
      }
    });
    // The floor: the same writer on a directory this store does not watch, so that the figure
    // below can be told apart from what any busy neighbour process costs on this machine.
    const elsewhere = await tempDir('bench-registry-elsewhere-');
    try {
      const floor = stallProbe();
      await runChild(['--writer', elsewhere.path, '--churn', String(churn)]);
      figures.stall_floor_ms = floor.stop();
    } finally {
      await elsewhere.remove();
    }
    const probe = stallProbe();
    const cli = await runChild(['--writer', state.path, '--churn', String(churn)]);
    await refreshing;
    figures.longest_stall_ms = probe.stop();
    figures.writer = { ...cli.result, process_wall_ms: cli.wallMs, churn };
    figures.changes_heard = heard;
    figures.resyncs_heard = resyncs;
    figures.rss_mb_after_churn = mb(process.memoryUsage().rss);
    figures.max_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);

    // The operator's `gateway devices add <id>`: a process that opens the store, adds one device, exits.
    const cliAdd = await runProcess([GATEWAY_BIN, 'devices', 'add', 'cli-1', '--state', state.path]);
    figures.cli_add_one = { process_wall_ms: cliAdd.wallMs };

    at = performance.now();
    let listed = 0;
    for await (const batch of gateway.devices.list()) listed += batch.length;
    figures.list_all_ms = ms(at);
    figures.listed = listed;
    await gateway.close();

    if (!hasFlag('no-migrate')) {
      // The one-time migration of an old devices.json of the same size.
      const old = await tempDir('bench-registry-migrate-');
      try {
        const legacy = JSON.stringify({ version: 1, devices: fleetRecords(devices, 'sim-') });
        await writeFile(join(old.path, 'devices.json'), legacy, { mode: 0o600 });
        figures.legacy_devices_json_mb = mb(Buffer.byteLength(legacy));
        at = performance.now();
        const migrated = await buildFileStore(old.path);
        figures.migrate_open_ms = ms(at);
        figures.migrated_count = await migrated.devices.count();
        await migrated.close();
      } finally {
        await old.remove();
      }
    }
  } finally {
    await state.remove();
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

const writerDir = flag('writer');
const provisionDir = flag('provision');
if (writerDir !== undefined) await writer(writerDir, Number(flag('churn') ?? 0));
else if (provisionDir !== undefined) await provision(provisionDir, Number(flag('devices')));
else await main();
