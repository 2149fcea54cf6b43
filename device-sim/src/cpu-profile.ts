import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The `.cpuprofile` that `node --cpu-prof` writes (V8's format). */
interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds of the monotonic clock (CLOCK_MONOTONIC, as process.hrtime), like the samples. */
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds since the previous sample (the first: since startTime). */
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  /** Share of the window's samples, in percent. */
  selfPercent: number;
  selfMs: number;
}

export interface ProfileSummary {
  /** Length of the summarised window. */
  totalMs: number;
  /** Where the process was idle (waiting for I/O). */
  idlePercent: number;
  functions: ProfileEntry[];
  /** Self time grouped by package or Node subsystem. */
  areas: ProfileEntry[];
  /** Stretches where the event loop never went idle: while they last, no new datagram is read. */
  busy: {
    thresholdMs: number;
    /** Stretches longer than the threshold. */
    count: number;
    maxMs: number;
    totalMs: number;
    /** What ran inside those stretches, by self time (percent of the stretches' samples). */
    functions: ProfileEntry[];
  };
}

/** A time window on the monotonic clock, in microseconds (`process.hrtime.bigint() / 1000n`). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

const BUSY_THRESHOLD_MS = 10;

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`), optionally only the samples inside
 * `window` (e.g. the load phase, leaving start-up out): functions with the most self time, the
 * same time grouped by where the code lives, and the stretches in which the event loop never idled.
 */
export async function summarizeCpuProfile(file: string, window?: ProfileWindow, top = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  const busyByFunction = new Map<string, number>();
  const busy = { count: 0, maxUs: 0, totalUs: 0, samplesUs: 0 };
  let stretch: { name: string; us: number }[] = [];
  let stretchUs = 0;
  let totalUs = 0;
  let idleUs = 0;
  const endStretch = () => {
    if (stretchUs > BUSY_THRESHOLD_MS * 1000) {
      busy.count += 1;
      busy.totalUs += stretchUs;
      busy.maxUs = Math.max(busy.maxUs, stretchUs);
      for (const { name, us } of stretch) add(busyByFunction, name, us);
      busy.samplesUs += stretchUs;
    }
    stretch = [];
    stretchUs = 0;
  };

  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i += 1) {
    at += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue;
    const node = byId.get(profile.samples[i]!);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`.trim();
    totalUs += us;
    add(byFunction, name, us);
    add(byArea, areaOf(functionName, url), us);
    if (functionName === '(idle)') {
      idleUs += us;
      endStretch();
    } else {
      stretch.push({ name, us });
      stretchUs += us;
    }
  }
  endStretch();

  const entries = (map: Map<string, number>, n: number, ofUs: number): ProfileEntry[] => [...map]
    .sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([name, us]) => ({ name, selfPercent: round1((us / Math.max(1, ofUs)) * 100), selfMs: Math.round(us / 1000) }));
  return {
    totalMs: Math.round(totalUs / 1000),
    idlePercent: round1((idleUs / Math.max(1, totalUs)) * 100),
    functions: entries(byFunction, top, totalUs),
    areas: entries(byArea, 12, totalUs),
    busy: {
      thresholdMs: BUSY_THRESHOLD_MS,
      count: busy.count,
      maxMs: round1(busy.maxUs / 1000),
      totalMs: Math.round(busy.totalUs / 1000),
      functions: entries(busyByFunction, 10, busy.samplesUs),
    },
  };
}

export function formatProfileSummary(summary: ProfileSummary): string[] {
  const lines = [`CPU profile: ${summary.totalMs} ms, idle ${summary.idlePercent} %`, 'self time by area:'];
  for (const a of summary.areas) lines.push(`  ${String(a.selfPercent).padStart(5)} %  ${a.name}`);
  lines.push('top functions by self time:');
  for (const f of summary.functions) lines.push(`  ${String(f.selfPercent).padStart(5)} %  ${f.name}`);
  const { busy } = summary;
  lines.push(`event loop busy without a break for more than ${busy.thresholdMs} ms: ${busy.count} times, `
    + `${busy.totalMs} ms in all, longest ${busy.maxMs} ms`);
  if (busy.count > 0) {
    lines.push('  what ran in those stretches (self time):');
    for (const f of busy.functions) lines.push(`  ${String(f.selfPercent).padStart(5)} %  ${f.name}`);
  }
  return lines;
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) return url.slice(modules + 'node_modules/'.length);
  const src = url.indexOf('/gateway/src/');
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

function areaOf(functionName: string, url: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? 'internal'}`;
  }
  const src = /\/gateway\/src\/([^/]+)/.exec(url);
  if (src !== null) return `gateway/${src[1]!.replace(/\.ts$/, '')}`;
  return url.replace(/^file:\/\//, '');
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
