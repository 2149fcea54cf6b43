import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('../bench/', import.meta.url));
export const DEFAULT_RESULTS_FILE = fileURLToPath(new URL('../bench/results.json', import.meta.url));
const RESULT_PREFIX = 'BENCH_RESULT ';

type Results = Record<string, unknown>;

interface BenchStep {
  name: string;
  file: string;
  args(results: Results, quick: boolean): string[];
  /** Skip the step unless this holds (e.g. profile only when a target was missed). */
  when?(results: Results, options: BenchOptions): boolean;
}

export interface BenchOptions {
  /** Run only these steps (names as listed by STEPS). */
  only: string[] | undefined;
  /** Profile the gateway: when a target is missed (auto), always, or never. */
  profile: 'auto' | 'always' | 'never';
  /** Shorter runs and a smaller fleet: a smoke test of the benchmark, not figures to quote. */
  quick: boolean;
  out: string;
  log(line: string): void;
}

/** A target of the issue: reported, never asserted. */
interface Target {
  name: string;
  field: string;
  compare: '>=' | '<=';
  limit: number;
  value(results: Results): number | undefined;
}

const num = (results: Results, field: string): number | undefined =>
  (typeof results[field] === 'number' ? results[field] as number : undefined);

const TARGETS: readonly Target[] = [
  { name: 'gateway throughput / node-coap echo ceiling', field: 'ratio', compare: '>=', limit: 0.5, value: (r) => num(r, 'ratio') },
  { name: 'p99 latency at half the gateway\'s peak (ms)', field: 'p99_ms_at_half_load', compare: '<=', limit: 5, value: (r) => num(r, 'p99_ms_at_half_load') },
  { name: 'repeated-token verification / cold', field: 'verify_cached_vs_cold', compare: '>=', limit: 50, value: (r) => num(r, 'verify_cached_vs_cold') },
  { name: 'gateway RSS, 100k provisioned, 10k active (MB)', field: 'rss_mb_100k_devices', compare: '<=', limit: 200, value: (r) => num(r, 'rss_mb_100k_devices') },
];

const missed = (results: Results, field: string) => TARGETS.some((t) => {
  const v = t.value(results);
  return t.field === field && v !== undefined && !(t.compare === '>=' ? v >= t.limit : v <= t.limit);
});

// One scenario per file, each in a fresh process, in this order (half-load needs the peak).
const STEPS: readonly BenchStep[] = [
  { name: 'ceiling', file: 'ceiling.ts', args: (_, q) => (q ? ['--duration', '3', '--devices', '300'] : []) },
  { name: 'gateway-peak', file: 'gateway-peak.ts', args: (_, q) => (q ? ['--duration', '3', '--devices', '300'] : []) },
  {
    name: 'gateway-half-load', file: 'gateway-half-load.ts',
    args: (r, q) => ['--rate', String(Math.max(1, Math.round((num(r, 'gateway_rps') ?? 1000) / 2))), ...(q ? ['--duration', '3', '--devices', '300'] : [])],
  },
  {
    name: 'echo-same-rate', file: 'echo-same-rate.ts',
    args: (r, q) => ['--rate', String(num(r, 'half_load_rps') ?? 1000), ...(q ? ['--duration', '3', '--devices', '300'] : [])],
  },
  { name: 'logins', file: 'logins.ts', args: (_, q) => (q ? ['--duration', '2', '--devices', '300'] : []) },
  { name: 'verify', file: 'verify.ts', args: (_, q) => (q ? ['--ms', '300', '--rounds', '2'] : []) },
  { name: 'cbor-decode', file: 'cbor-decode.ts', args: (_, q) => (q ? ['--ms', '300', '--rounds', '2'] : []) },
  { name: 'rss-100k', file: 'rss-100k.ts', args: (_, q) => (q ? ['--provisioned', '20000', '--active', '2000'] : []) },
  {
    name: 'gateway-profile', file: 'gateway-peak.ts', args: (_, q) => ['--profile', '--duration', q ? '3' : '5', ...(q ? ['--devices', '300'] : [])],
    when: (r, o) => o.profile === 'always' || (o.profile === 'auto' && missed(r, 'ratio')),
  },
  {
    name: 'half-load-profile', file: 'gateway-half-load.ts',
    args: (r, q) => ['--profile', '--rate', String(num(r, 'half_load_rps') ?? 1000), '--duration', q ? '3' : '5', ...(q ? ['--devices', '300'] : [])],
    when: (r, o) => o.profile === 'always' || (o.profile === 'auto' && missed(r, 'p99_ms_at_half_load')),
  },
];

export const BENCH_STEP_NAMES = STEPS.map((s) => s.name);

/**
 * `make bench`: runs each scenario file in a fresh process, collects the figures each prints,
 * derives the ratios, prints them with the targets, Node version and CPU, and writes the JSON.
 * Returns the number of steps that failed.
 */
export async function runBench(options: BenchOptions): Promise<number> {
  const { log } = options;
  const startedMs = performance.now();
  const cpu = cpus();
  const environment = {
    node: process.version, cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, platform: `${process.platform} ${process.arch}`,
    loadavg_1m_at_start: Math.round(loadavg()[0]! * 100) / 100,
  };
  log(`device-sim bench: Node ${environment.node}, ${environment.cpu} x ${environment.cores}, load average ${environment.loadavg_1m_at_start}`);
  if (environment.loadavg_1m_at_start > 0.5 * environment.cores) {
    log(`warning: the machine is busy (load average ${environment.loadavg_1m_at_start} on ${environment.cores} cores): figures will be low and noisy`);
  }
  const results: Results = {};
  const failed: string[] = [];
  for (const step of STEPS) {
    if (options.only !== undefined && !options.only.includes(step.name)) continue;
    derive(results);
    if (step.when !== undefined && !step.when(results, options)) continue;
    log('');
    log(`== ${step.name} (${step.file}, fresh process)`);
    const code = await runStep(step, step.args(results, options.quick), results, log);
    if (code !== 0) {
      failed.push(step.name);
      log(`!! ${step.name} failed (exit ${code})`);
    }
  }
  derive(results);
  const summary = {
    ...pickNumbers(results),
    targets: TARGETS.map((t) => {
      const value = t.value(results);
      const met = value === undefined ? null : t.compare === '>=' ? value >= t.limit : value <= t.limit;
      const missedByPercent = value === undefined || met === true ? 0
        : Math.round((t.compare === '>=' ? 1 - value / t.limit : value / t.limit - 1) * 100);
      return { name: t.name, field: t.field, target: `${t.compare} ${t.limit}`, value: value ?? null, met, missed_by_percent: missedByPercent };
    }),
    environment: { ...environment, loadavg_1m_at_end: Math.round(loadavg()[0]! * 100) / 100 },
    command: `device-sim bench${options.quick ? ' --quick' : ''}${options.only ? ` --only ${options.only.join(',')}` : ''}`,
    date: new Date().toISOString(),
    duration_sec: Math.round((performance.now() - startedMs) / 1000),
    failed_steps: failed,
    ...(results.gateway_profile !== undefined ? { gateway_profile: results.gateway_profile } : {}),
    ...(results.half_load_profile !== undefined ? { half_load_profile: results.half_load_profile } : {}),
  };
  log('');
  for (const line of formatSummary(summary)) log(line);
  await writeFile(options.out, `${JSON.stringify(summary, null, 2)}\n`);
  log(`results written to ${options.out} (${summary.duration_sec} s)`);
  return failed.length;
}

async function runStep(step: BenchStep, args: string[], results: Results, log: (line: string) => void): Promise<number | null> {
  const tsx = import.meta.resolve('tsx');
  const child = spawn(process.execPath, ['--import', tsx, `${BENCH_DIR}${step.file}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (!line.startsWith(RESULT_PREFIX)) return log(`   ${line}`);
    try {
      Object.assign(results, JSON.parse(line.slice(RESULT_PREFIX.length)) as Results);
    } catch {
      log(`   (unreadable result line: ${line})`);
    }
  });
  return new Promise((resolve) => child.once('close', (code) => resolve(code)));
}

function derive(results: Results): void {
  const ceiling = num(results, 'ceiling_rps');
  const gateway = num(results, 'gateway_rps');
  if (ceiling !== undefined && gateway !== undefined && ceiling > 0) results.ratio = round(gateway / ceiling, 3);
  const cold = num(results, 'verify_cold_per_s');
  const cached = num(results, 'verify_cached_per_s');
  if (cold !== undefined && cached !== undefined && cold > 0) results.verify_cached_vs_cold = round(cached / cold, 1);
  const gatewayCpu = num(results, 'gateway_cpu_us_per_request');
  const echoCpu = num(results, 'ceiling_server_cpu_us_per_request');
  if (gatewayCpu !== undefined && echoCpu !== undefined && gatewayCpu > 0) results.cpu_ratio = round(echoCpu / gatewayCpu, 3);
}

function pickNumbers(results: Results): Record<string, number> {
  return Object.fromEntries(Object.entries(results).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
}

const fleetSize = (r: Results) => `${num(r, 'rss_provisioned_devices') ?? '?'} provisioned, ${num(r, 'rss_active_devices') ?? '?'} active`;
const ROWS: readonly [string, string | ((r: Results) => string), string][] = [
  ['ceiling_rps', 'node-coap echo ceiling', 'req/s'],
  ['gateway_rps', 'gateway end to end, peak', 'req/s'],
  ['ratio', 'gateway / ceiling', 'x'],
  ['cpu_ratio', 'echo CPU per request / gateway CPU per request', 'x'],
  ['ceiling_server_cpu_us_per_request', 'echo server CPU per request', 'us'],
  ['gateway_cpu_us_per_request', 'gateway CPU per request', 'us'],
  ['backend_cpu_us_per_request', 'backend CPU per request', 'us'],
  ['generator_cpu_us_per_request', 'load generator CPU per request (echo run)', 'us'],
  ['gateway_peak_p99_ms', 'gateway p99 at peak (closed loop)', 'ms'],
  ['p99_ms_at_half_load', 'gateway p99 at half of peak (open loop)', 'ms'],
  ['p50_ms_at_half_load', 'gateway p50 at half of peak', 'ms'],
  ['half_load_udp_drops', 'datagrams dropped (full receive buffer) at half load', ''],
  ['half_load_gc_pause_max_ms', 'gateway longest GC pause at half load', 'ms'],
  ['echo_p99_ms_at_half_load_rate', 'control: echo server p99 at the same rate', 'ms'],
  ['echo_p50_ms_at_half_load_rate', 'control: echo server p50 at the same rate', 'ms'],
  ['gateway_rss_mb_after_peak', 'gateway RSS after the peak run (1,000 devices)', 'MB'],
  ['login_rps', 'logins', '/s'],
  ['verify_cold_per_s', 'token verification, cold (signature)', '/s'],
  ['verify_jose_per_s', 'jose jwtVerify alone', '/s'],
  ['verify_cached_per_s', 'token verification, same token (cache)', '/s'],
  ['verify_cached_fleet_per_s', 'token verification, 2,000 tokens in turn', '/s'],
  ['verify_cached_vs_cold', 'cached / cold', 'x'],
  ['cbor_decode_per_s', 'CBOR decode of a reading', '/s'],
  ['cbor_to_json_per_s', 'CBOR -> JSON of a reading', '/s'],
  ['rss_idle_mb_100k_devices', (r) => `gateway RSS, ${num(r, 'rss_provisioned_devices') ?? '?'} provisioned, idle`, 'MB'],
  ['rss_mb_100k_devices', (r) => `gateway RSS, ${fleetSize(r)}`, 'MB'],
  ['rss_peak_mb_100k_devices', 'gateway peak RSS, same run', 'MB'],
];

interface TargetResult { name: string; target: string; value: number | null; met: boolean | null; missed_by_percent: number }

function formatSummary(summary: Record<string, unknown> & { targets: TargetResult[] }): string[] {
  const env = summary.environment as { node: string; cpu: string; cores: number; loadavg_1m_at_start: number; loadavg_1m_at_end: number };
  const lines = [`figures (Node ${env.node}, ${env.cpu} x ${env.cores} cores, load average ${env.loadavg_1m_at_start} -> ${env.loadavg_1m_at_end})`];
  for (const [field, label, unit] of ROWS) {
    const value = summary[field];
    const text = typeof label === 'function' ? label(summary) : label;
    if (typeof value === 'number') lines.push(`  ${text.padEnd(52)} ${String(value).padStart(10)} ${unit}   (${field})`);
  }
  lines.push('targets (reported, not asserted):');
  for (const t of summary.targets) {
    const verdict = t.met === null ? 'not measured' : t.met ? 'met' : `MISSED by ${t.missed_by_percent} %`;
    lines.push(`  ${t.name.padEnd(52)} ${String(t.value ?? '-').padStart(10)}   target ${t.target.padEnd(7)} ${verdict}`);
  }
  return lines;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
