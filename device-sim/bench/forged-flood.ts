// The forged-signature flood as a bench figure: one gateway process, one run, the same
// legitimate open-loop load twice: phase A alone, phase B while forged tokens arrive from other
// UDP sockets on 127.0.0.1. Each forgery is what anyone who saw one real token can make: its
// header (real alg and kid) and claims (a real device's sub and record id), a fresh jti so the
// gateway's cache of verified tokens never answers for it, and 64 random bytes as the signature.
// Every check before the signature passes, so each forgery costs the gateway a signature check,
// unless a budget of failed checks per source answers it 4.29 unchecked. Figures: legitimate
// p50/p99 and success rate in A and B, how the flood was answered, the gateway's CPU per second
// in each phase and the share of B's that the flood costs (all of it: receiving, refusing, logging
// and answering each forgery, not only signature checks). On loopback the fleet and the flood share
// the source address 127.0.0.1, so a per-source budget the flood spends is spent for the fleet too:
// its requests pass only because their tokens are already verified (cached at login or warm-up).
// Flags: --rate, --duration (each phase), --devices, --flood-rate, --flood-sockets, --profile (phase B).
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { generate, parse } from 'coap-packet';
import { ACCESS_TOKEN_OPTION, ContentFormat, encodeCbor } from '../../gateway/src/wire/index.ts';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { DeviceClient } from '../src/device-client.ts';
import { SimError } from '../src/errors.ts';
import { runFleet, type FleetOptions } from '../src/fleet.ts';
import type { FleetReport } from '../src/report.ts';
import { emitResult, flag, loadPhaseCpu, printReport, say, startGatewayScenario } from './lib.ts';

const HOST = '127.0.0.1';
const ratePerSec = Number(flag('rate') ?? 1000);
const durationSec = Number(flag('duration') ?? 8);
const floodPerSec = Number(flag('flood-rate') ?? 4000);
const floodSocketCount = Number(flag('flood-sockets') ?? 4);
/** The flood sends what is due each tick: open loop, on schedule, whatever the answers do. */
const FLOOD_TICK_MS = 5;
/** After its last datagram the flood waits for answers this long at most, and 1 s after the last one. */
const FLOOD_DRAIN_MS = 5000;
const FLOOD_QUIET_MS = 1000;
/** Message IDs a socket can use before one repeats (and the gateway answers it from its exchange table). */
const MESSAGE_IDS = 0x10000;

const floodCount = Math.round(floodPerSec * durationSec);
checkOptions();

interface FloodTally {
  sent: number;
  sendErrors: number;
  sendSec: number;
  /** Answers by CoAP code, one per forged request (a retransmitted separate response counts once). */
  answers: Map<string, number>;
  unanswered: number;
}

interface PhaseFigures {
  report: FleetReport;
  successRate: number;
  gatewayCpuPerSec: number;
  generatorCpuPerSec: number;
  udpDrops: number;
  window: Promise<ProfileWindow | undefined>;
}

const scenario = await startGatewayScenario('bench-flood-', { traceGcWhileProfiling: false });
const { deviceCount, devices, gateway } = scenario;
let floodSockets: Socket[] = [];
let loadWindow: Promise<ProfileWindow | undefined> = Promise.resolve(undefined);
try {
  say(`gateway on ${HOST}:${gateway.port}; ${deviceCount} devices, open loop at ${ratePerSec}/s, ${durationSec} s (after warm-up), `
    + `without and then with a flood of ${floodPerSec} forged tokens/s from ${floodSocketCount} other sockets`);
  const common = { host: HOST, port: gateway.port, scenario: 'normal', ratePerSec } as const;
  const victim = devices[0]!;
  const forge = forger(await realToken(gateway.port, victim.id, victim.secret));
  const datagrams = floodDatagrams(floodCount, floodSocketCount, forge);
  say(`forged tokens name device ${victim.id}, with the kid of the token it got at login; ${datagrams.length} datagrams built before the run`);
  await runFleet({ ...common, devices: devices.slice(0, 200), durationSec: 2 });

  const legitimate = { ...common, devices, durationSec, warmup: true };
  const quiet = await legitimatePhase('phase A: legitimate load, no flood', legitimate, gateway.pid);
  floodSockets = await Promise.all(Array.from({ length: floodSocketCount }, bindLoopback));
  const flood = listenForAnswers(floodSockets, gateway.port, datagrams.length);
  let flooding: Promise<FloodTally> | undefined;
  const flooded = await legitimatePhase('phase B: the same load during the flood', legitimate, gateway.pid, () => {
    flooding ??= flood.run(datagrams, floodPerSec, durationSec);
  });
  loadWindow = flooded.window;
  // The flood starts with phase B's load phase; a fleet that never got there sent none.
  const tally = await (flooding ?? flood.run([], floodPerSec, 0));

  const share = flooded.gatewayCpuPerSec > 0 ? (flooded.gatewayCpuPerSec - quiet.gatewayCpuPerSec) / flooded.gatewayCpuPerSec : 0;
  const floodCpuSec = (flooded.gatewayCpuPerSec - quiet.gatewayCpuPerSec) * flooded.report.phasesSec.load;
  const usPerForgery = tally.sent > 0 ? round((floodCpuSec * 1e6) / tally.sent, 1) : 0;
  const answered = (code: string) => tally.answers.get(code) ?? 0;
  const other = [...tally.answers].filter(([code]) => code !== '4.01' && code !== '4.29');
  const achievedPerSec = tally.sendSec > 0 ? Math.round(tally.sent / tally.sendSec) : 0;
  say('');
  const row = (label: string, a: number | string, b: number | string) => say(`  ${label.padEnd(46)} ${String(a).padStart(9)} ${String(b).padStart(9)}`);
  row(`legitimate load, ${ratePerSec}/s for ${durationSec} s`, 'no flood', 'flood');
  row('p50 (ms)', quiet.report.requests.latencyMs.p50, flooded.report.requests.latencyMs.p50);
  row('p99 (ms)', quiet.report.requests.latencyMs.p99, flooded.report.requests.latencyMs.p99);
  // Open loop with one request per device at a time: a slow gateway leaves requests unsent.
  row(`sent (of ${Math.round(ratePerSec * durationSec)} due)`, quiet.report.requests.sent, flooded.report.requests.sent);
  row('success (answered as expected / sent)', quiet.successRate, flooded.successRate);
  row('timeouts', quiet.report.requests.timeouts, flooded.report.requests.timeouts);
  row('gateway CPU (s per s)', quiet.gatewayCpuPerSec, flooded.gatewayCpuPerSec);
  row('load generator CPU (s per s, this process)', quiet.generatorCpuPerSec, flooded.generatorCpuPerSec);
  row('UDP drops, full receive buffer (machine-wide)', quiet.udpDrops, flooded.udpDrops);
  say(`flood: ${tally.sent} forged datagrams in ${round(tally.sendSec, 2)} s (${achievedPerSec}/s, ${tally.sendErrors} send errors); `
    + `answered 4.01 ${answered('4.01')}, 4.29 ${answered('4.29')}${other.map(([c, n]) => `, ${c} ${n}`).join('')}, unanswered ${tally.unanswered}`);
  say(`share of the gateway's CPU in phase B spent on the flood: ${round(share, 3)} `
    + `(${round(floodCpuSec, 2)} s, ${usPerForgery} us per forged datagram)`);

  emitResult({
    flood_legit_rate_per_s: ratePerSec,
    noflood_legit_p50_ms: quiet.report.requests.latencyMs.p50,
    noflood_legit_p99_ms: quiet.report.requests.latencyMs.p99,
    noflood_legit_sent: quiet.report.requests.sent,
    noflood_legit_success_rate: quiet.successRate,
    noflood_gateway_cpu_per_s: quiet.gatewayCpuPerSec,
    noflood_udp_drops: quiet.udpDrops,
    flood_legit_p50_ms: flooded.report.requests.latencyMs.p50,
    flood_legit_p99_ms: flooded.report.requests.latencyMs.p99,
    flood_legit_sent: flooded.report.requests.sent,
    flood_legit_success_rate: flooded.successRate,
    flood_gateway_cpu_per_s: flooded.gatewayCpuPerSec,
    flood_udp_drops: flooded.udpDrops,
    flood_rate_per_s: achievedPerSec,
    flood_sent: tally.sent,
    flood_answered_401: answered('4.01'),
    flood_answered_429: answered('4.29'),
    flood_answered_other: other.reduce((sum, [, n]) => sum + n, 0),
    flood_unanswered: tally.unanswered,
    flood_gateway_cpu_share: round(share, 3),
    flood_gateway_cpu_us_per_forgery: usPerForgery,
  });
} finally {
  await Promise.all(floodSockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  await scenario.finish('flood_profile', loadWindow);
}

/** One run of the legitimate load, measured from its load phase on; `onLoad` is called (repeatedly) once that starts. */
async function legitimatePhase(title: string, fleet: FleetOptions, gatewayPid: number, onLoad?: () => void): Promise<PhaseFigures> {
  const cpu = loadPhaseCpu({ gateway: gatewayPid, generator: process.pid });
  const report = await runFleet({
    ...fleet,
    onProgress: (progress) => {
      cpu.onProgress(progress);
      if (progress.phase === 'load') onLoad?.();
    },
  });
  printReport(title, report);
  // With one unit, "per request" is the load phase's total.
  const cpuUs = await cpu.usPerRequest(1);
  const perSec = (us: number | undefined) => (report.phasesSec.load > 0 ? round((us ?? 0) / 1e6 / report.phasesSec.load, 3) : 0);
  return {
    report,
    successRate: round(report.requests.asExpected / Math.max(1, report.requests.sent), 4),
    gatewayCpuPerSec: perSec(cpuUs.gateway),
    generatorCpuPerSec: perSec(cpuUs.generator),
    udpDrops: await cpu.udpDrops(),
    window: cpu.window(),
  };
}

function checkOptions(): void {
  const problems: string[] = [];
  const positive = (name: string, value: number, max: number) => {
    if (!(Number.isFinite(value) && value > 0 && value <= max)) problems.push(`--${name}: expected a number above 0, at most ${max}, got ${value}`);
  };
  positive('rate', ratePerSec, 100_000);
  positive('duration', durationSec, 120);
  positive('flood-rate', floodPerSec, 50_000);
  if (!(Number.isInteger(floodSocketCount) && floodSocketCount >= 1 && floodSocketCount <= 64)) {
    problems.push(`--flood-sockets: expected a whole number from 1 to 64, got ${floodSocketCount}`);
  } else if (floodCount > floodSocketCount * MESSAGE_IDS) {
    problems.push(`${floodCount} forged datagrams would reuse message IDs on ${floodSocketCount} sockets: raise --flood-sockets`);
  }
  if (problems.length > 0) throw new SimError('SIM_ERR_BAD_OPTION', problems.join('; '));
}

/** An access token the gateway issued: logs `id` in from a socket of its own. */
async function realToken(port: number, id: string, secret: Buffer): Promise<string> {
  const client = await DeviceClient.open(HOST, port, { timeoutMs: 5000 });
  try {
    const { answer, tokens } = await client.login(id, secret);
    if (tokens === undefined) throw new SimError('SIM_ERR_SCENARIO', `the gateway answered ${answer.code} to the login of ${id}`);
    return tokens.accessToken;
  } finally {
    await client.close();
  }
}

/** Forgeries of `token`: its header and claims, a jti of their own each, a random signature. */
function forger(token: string): (i: number) => string {
  const [header, payload] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
  const runId = randomBytes(6).toString('base64url');
  return (i) => {
    const forged = Buffer.from(JSON.stringify({ ...claims, jti: `${runId}-${i}` })).toString('base64url');
    return `${header}.${forged}.${randomBytes(64).toString('base64url')}`;
  };
}

/**
 * The flood's datagrams, built before it starts so that sending costs this process little:
 * confirmable POST /telemetry/temp with a CBOR reading and a forged Access-Token. Datagram i goes
 * out on socket i % sockets; its CoAP token is i, to match the answer to it.
 */
function floodDatagrams(count: number, sockets: number, forge: (i: number) => string): Buffer[] {
  const payload = encodeCbor(new Map([['celsius', 21.5]]));
  const firstMessageId = Array.from({ length: sockets }, () => randomInt(MESSAGE_IDS));
  const path = [{ name: 'Uri-Path', value: Buffer.from('telemetry') }, { name: 'Uri-Path', value: Buffer.from('temp') }] as const;
  return Array.from({ length: count }, (_, i) => {
    const token = Buffer.alloc(4);
    token.writeUInt32BE(i);
    return generate({
      code: 'POST', confirmable: true, token, payload,
      messageId: (firstMessageId[i % sockets]! + Math.floor(i / sockets)) % MESSAGE_IDS,
      options: [...path, { name: 'Content-Format', value: Buffer.from([ContentFormat.cbor]) },
        { name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(forge(i)) }],
    });
  });
}

function bindLoopback(): Promise<Socket> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, HOST, () => { socket.off('error', reject); resolve(socket); });
  });
}

/** Counts the gateway's answers on the flood's sockets, and sends the flood on them. */
function listenForAnswers(sockets: Socket[], port: number, capacity: number) {
  const answered = new Uint8Array(capacity);
  const answers = new Map<string, number>();
  let answeredCount = 0;
  let lastAnswerMs = performance.now();
  const emptyAck = (messageId: number) => generate({ code: '0.00', ack: true, messageId, token: Buffer.alloc(0) });
  for (const socket of sockets) {
    socket.on('message', (msg) => {
      let packet;
      try {
        packet = parse(msg);
      } catch {
        return;
      }
      // RFC 7252 section 5.2.2: a late answer comes as a confirmable separate response; unacknowledged, it is sent again.
      if (packet.confirmable) socket.send(emptyAck(packet.messageId), port, HOST);
      // An empty ACK only says the answer will follow separately.
      if (packet.code === '0.00' || packet.token.length !== 4) return;
      const i = packet.token.readUInt32BE(0);
      if (i >= capacity || answered[i] === 1) return;
      answered[i] = 1;
      answeredCount += 1;
      lastAnswerMs = performance.now();
      answers.set(packet.code, (answers.get(packet.code) ?? 0) + 1);
    });
  }
  return {
    /** Sends `datagrams` at `perSec` for at most `maxSec`, then waits (bounded) for the answers. */
    async run(datagrams: readonly Buffer[], perSec: number, maxSec: number): Promise<FloodTally> {
      let sent = 0;
      let sendErrors = 0;
      const onSent = (err: Error | null) => { if (err !== null) sendErrors += 1; };
      const startMs = performance.now();
      const stopMs = startMs + maxSec * 1000;
      while (sent < datagrams.length && performance.now() < stopMs) {
        const due = Math.min(datagrams.length, Math.floor(((performance.now() - startMs) * perSec) / 1000));
        for (; sent < due; sent += 1) sockets[sent % sockets.length]!.send(datagrams[sent]!, port, HOST, onSent);
        await sleep(FLOOD_TICK_MS);
      }
      const sendSec = (performance.now() - startMs) / 1000;
      const sentMs = performance.now();
      lastAnswerMs = Math.max(lastAnswerMs, sentMs);
      while (answeredCount < sent && performance.now() - sentMs < FLOOD_DRAIN_MS && performance.now() - lastAnswerMs < FLOOD_QUIET_MS) {
        await sleep(50);
      }
      return { sent, sendErrors, sendSec, answers: new Map(answers), unanswered: sent - answeredCount };
    },
  };
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
