import { readFile } from 'node:fs/promises';
import { SourceMap, type SourceMapPayload } from 'node:module';

interface ProfileNode {
  id: number;
  /** Zero-based position of the function's start in the code V8 ran. */
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
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
  /**
   * The same, with Node's internals and native code charged to the nearest caller in a package or
   * a gateway folder (a socket write made for undici counts as undici's): what each part costs.
   */
  callerAreas: ProfileEntry[];
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

export interface SummarizeOptions {
  /** Only the samples inside this window (e.g. the load phase, leaving start-up out). */
  window?: ProfileWindow;
  /** How many functions to list by self time (default 15). */
  top?: number;
  /**
   * Source maps by file URL (as the profiled process registered them): a function in a file that
   * was compiled on load (tsx) is then named by its line in the source, not in the generated code.
   */
  sourceMaps?: Readonly<Record<string, SourceMapPayload>>;
}

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): functions with the most self time, the
 * same time grouped by where the code lives, and the stretches in which the event loop never idled.
 */
export async function summarizeCpuProfile(file: string, options: SummarizeOptions = {}): Promise<ProfileSummary> {
  const { window, top = 15 } = options;
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const sourceLine = sourceLineResolver(options.sourceMaps ?? {});
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  const byCallerArea = new Map<string, number>();
  const callerAreaOf = callerAreaResolver(profile.nodes);
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
    const { functionName, url } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${sourceLine(node.callFrame)}` : ''}`.trim();
    totalUs += us;
    add(byFunction, name, us);
    add(byArea, areaOf(functionName, url), us);
    add(byCallerArea, callerAreaOf(node), us);
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
    callerAreas: entries(byCallerArea, 12, totalUs),
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
  lines.push('self time by area, Node internals and native code charged to their caller:');
  for (const a of summary.callerAreas) lines.push(`  ${String(a.selfPercent).padStart(5)} %  ${a.name}`);
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

/** The area of a sample's function, or for Node's own and native code, of its nearest caller outside them. */
function callerAreaResolver(nodes: readonly ProfileNode[]) {
  const parentOf = new Map<number, ProfileNode>();
  for (const node of nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const memo = new Map<number, string>();
  const isNodes = (area: string) => area === '(native)' || area.startsWith('node:');
  return (node: ProfileNode): string => {
    const known = memo.get(node.id);
    if (known !== undefined) return known;
    let area = areaOf(node.callFrame.functionName, node.callFrame.url);
    for (let at = parentOf.get(node.id); isNodes(area) && at !== undefined; at = parentOf.get(at.id)) {
      const caller = areaOf(at.callFrame.functionName, at.callFrame.url);
      // The root and Node's start-up frames: nothing of ours called it (e.g. a socket read).
      if (caller.startsWith('(')) break;
      if (!isNodes(caller)) area = caller;
    }
    memo.set(node.id, area);
    return area;
  };
}

/** One-based line of a function's start, through the file's source map when there is one. */
function sourceLineResolver(payloads: Readonly<Record<string, SourceMapPayload>>) {
  const maps = new Map<string, SourceMap | undefined>();
  return ({ url, lineNumber, columnNumber }: ProfileNode['callFrame']): number => {
    if (!maps.has(url)) maps.set(url, payloads[url] === undefined ? undefined : new SourceMap(payloads[url]));
    const entry = maps.get(url)?.findEntry(lineNumber, columnNumber);
    // findEntry answers {} when no mapping covers the position.
    return entry !== undefined && 'originalLine' in entry ? entry.originalLine + 1 : lineNumber + 1;
  };
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
