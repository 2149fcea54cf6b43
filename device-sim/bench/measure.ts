// What the benchmarks read besides the simulator's report: memory, CPU time, GC pauses and UDP
// drops of a process (Linux /proc), CPU profiles, and operations per second of a function.
import { readFile, stat } from 'node:fs/promises';
import { formatProfileSummary, type ProfileSummary, type ProfileWindow } from '../src/cpu-profile.ts';
import type { FleetProgress } from '../src/fleet.ts';

// USER_HZ: the unit of /proc/<pid>/stat times; 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SEC = 100;
const say = (line: string) => process.stdout.write(`${line}\n`);

/** Resident and peak resident memory of a process, from /proc (Linux). */
export async function memoryOf(pid: number): Promise<{ rssMb: number; peakRssMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: round1(kb('VmRSS') / 1024), peakRssMb: round1(kb('VmHWM') / 1024) };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
}

/**
 * Measures the CPU that processes spend during a fleet run's load phase only (not while sockets
 * open or devices log in): pass `onProgress` to runFleet, then ask for microseconds per request.
 */
export function loadPhaseCpu(pids: Record<string, number>, gatewayLog?: string) {
  interface Sample { cpu: number[]; udpErrors: number; logBytes: number; monoUs: number }
  let start: Promise<Sample> | undefined;
  let end: Promise<Sample> | undefined;
  const sample = async (): Promise<Sample> => ({
    monoUs: Number(process.hrtime.bigint() / 1000n),
    cpu: await Promise.all(Object.values(pids).map(cpuSecondsOf)),
    udpErrors: await udpReceiveBufferErrors(),
    logBytes: gatewayLog === undefined ? 0 : (await stat(gatewayLog)).size,
  });
  return {
    onProgress(progress: FleetProgress): void {
      if (progress.phase === 'load') start ??= sample();
      if (progress.phase === 'drain') end ??= sample();
    },
    async usPerRequest(requests: number): Promise<Record<string, number>> {
      const [before, after] = await Promise.all([start, end]);
      if (before === undefined || after === undefined) return {};
      return Object.fromEntries(Object.keys(pids).map((name, i) => [name, round1(((after.cpu[i]! - before.cpu[i]!) * 1e6) / Math.max(1, requests))]));
    },
    /** Datagrams dropped for a full receive buffer during the load phase (machine-wide). */
    async udpDrops(): Promise<number> {
      const [before, after] = await Promise.all([start, end]);
      return before === undefined || after === undefined ? 0 : after.udpErrors - before.udpErrors;
    },
    /** The load phase on the monotonic clock, for summarizeCpuProfile. */
    async window(): Promise<ProfileWindow | undefined> {
      const [before, after] = await Promise.all([start, end]);
      return before === undefined || after === undefined ? undefined : { fromUs: before.monoUs, toUs: after.monoUs };
    },
    /** GC pauses the gateway logged (--trace-gc) during the load phase. */
    async gcPauses(): Promise<GcPauses | undefined> {
      const before = await start;
      return gatewayLog === undefined || before === undefined ? undefined : gcPausesIn(gatewayLog, before.logBytes);
    },
  };
}

export interface GcPauses {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Pauses of 20 ms or more: long enough to overflow a UDP receive buffer at a few thousand requests/s. */
  over20Ms: number;
  markCompacts: number;
}

/** Summarises the `--trace-gc` lines a gateway wrote to its log (stop-the-world pause per collection). */
export async function gcPausesIn(logFile: string, fromByte = 0): Promise<GcPauses> {
  const text = (await readFile(logFile)).subarray(fromByte).toString('utf8');
  const pauses = [...text.matchAll(/ms: (Scavenge|Mark-Compact|Mark-Compact \(reduce\)|Minor Mark-Sweep)[^\n]*? MB, ([\d.]+) \/ [\d.]+ ms/g)];
  const ms = pauses.map((m) => Number(m[2]));
  return {
    count: ms.length,
    totalMs: round1(ms.reduce((a, b) => a + b, 0)),
    maxMs: round1(Math.max(0, ...ms)),
    over20Ms: ms.filter((v) => v >= 20).length,
    markCompacts: pauses.filter((m) => m[1]!.startsWith('Mark-Compact')).length,
  };
}

/** Datagrams the kernel dropped because a socket's receive buffer was full (all sockets, /proc/net/snmp). */
export async function udpReceiveBufferErrors(): Promise<number> {
  const lines = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Number(values[names.indexOf('RcvbufErrors')] ?? NaN);
}

export function printProfile(summary: ProfileSummary | undefined): void {
  if (summary === undefined) {
    say('no CPU profile was written');
    return;
  }
  for (const line of formatProfileSummary(summary)) say(line);
}

/** Operations per second of `op`, run in batches until `ms` have passed (after a short warm-up). */
export async function opsPerSec(op: () => unknown, ms: number, batch = 1000): Promise<number> {
  const run = async (until: number) => {
    let done = 0;
    const start = performance.now();
    while (performance.now() - start < until) {
      for (let i = 0; i < batch; i += 1) {
        const r = op();
        if (r instanceof Promise) await r;
      }
      done += batch;
    }
    return done / ((performance.now() - start) / 1000);
  };
  await run(Math.min(300, ms / 4));
  return Math.round(await run(ms));
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
