// A flood of forged OSCORE datagrams beside legitimate OSCORE traffic: one gateway process, one
// run, the same open-loop load of tokenless protected readings twice, phase A alone and phase B
// while forgeries arrive from other UDP sockets on 127.0.0.1. Each forgery is what anyone who
// heard one real request can make: a POST with an OSCORE option naming a real device's kid (its
// Sender ID, which travels in clear), a fresh random Partial IV, and 40 random bytes where the
// ciphertext goes. The gateway finds the context and runs AES-CCM on it, which fails; no
// signature is involved. Figures: legitimate p50/p99 and success rate in A and B, how the flood
// was answered, the gateway's CPU per second in each phase and, from the difference, its CPU
// per forged datagram (all of it: receiving, the context lookup, the failed decryption, the
// answer in clear, the log line).
// Flags: --rate (`make bench` passes half the OSCORE peak of the oscore step), --duration (each
// phase), --devices, --flood-rate, --flood-sockets, --profile (phase B).
import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { generate } from 'coap-packet';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { SimError } from '../src/errors.ts';
import { runFleet } from '../src/fleet.ts';
import { OSCORE_OPTION, writeOscoreOption } from '../src/oscore-messages.ts';
import { HOST, MESSAGE_IDS, bindLoopback, legitimatePhase, listenForAnswers, round, type FloodTally } from './flood-lib.ts';
import { emitResult, flag, say, startGatewayScenario } from './lib.ts';

const ratePerSec = Number(flag('rate') ?? 1000);
const durationSec = Number(flag('duration') ?? 8);
const floodPerSec = Number(flag('flood-rate') ?? 4000);
const floodSocketCount = Number(flag('flood-sockets') ?? 4);
/** About a protected reading's ciphertext (plaintext of 40-odd bytes and the 8-byte tag). */
const FORGED_CIPHERTEXT_BYTES = 40;

const floodCount = Math.round(floodPerSec * durationSec);
checkOptions();

const scenario = await startGatewayScenario('bench-oscore-flood-', { traceGcWhileProfiling: false, provisionFlags: ['--oscore'] });
const { deviceCount, devices, gateway } = scenario;
let floodSockets: Socket[] = [];
let loadWindow: Promise<ProfileWindow | undefined> = Promise.resolve(undefined);
try {
  say(`gateway on ${HOST}:${gateway.port}; ${deviceCount} devices under OSCORE, open loop at ${ratePerSec}/s, ${durationSec} s (after warm-up), `
    + `without and then with a flood of ${floodPerSec} forged OSCORE datagrams/s from ${floodSocketCount} other sockets`);
  const common = { host: HOST, port: gateway.port, scenario: 'normal', ratePerSec, security: 'oscore' } as const;
  const victim = devices[0]!;
  const kid = victim.oscore!.context.senderId;
  const datagrams = floodDatagrams(floodCount, floodSocketCount, kid);
  say(`forgeries name device ${victim.id} by its kid ${kid.toString('hex')} (it sends in the legitimate load too); `
    + `${datagrams.length} datagrams built before the run`);
  // Every context through its Echo recovery first (the file store holds no replay window for a new one).
  await runFleet({ host: HOST, port: gateway.port, scenario: 'normal', security: 'oscore', devices, concurrency: 64, count: deviceCount * 2 });

  const legitimate = { ...common, devices, durationSec, warmup: true };
  const quiet = await legitimatePhase('phase A: legitimate OSCORE load, no flood', legitimate, gateway.pid);
  floodSockets = await Promise.all(Array.from({ length: floodSocketCount }, bindLoopback));
  const flood = listenForAnswers(floodSockets, gateway.port, datagrams.length);
  let flooding: Promise<FloodTally> | undefined;
  const flooded = await legitimatePhase('phase B: the same load during the flood', legitimate, gateway.pid, () => {
    flooding ??= flood.run(datagrams, floodPerSec, durationSec);
  });
  loadWindow = flooded.window;
  const tally = await (flooding ?? flood.run([], floodPerSec, 0));

  const floodCpuSec = (flooded.gatewayCpuPerSec - quiet.gatewayCpuPerSec) * flooded.report.phasesSec.load;
  const usPerForgery = tally.sent > 0 ? round((floodCpuSec * 1e6) / tally.sent, 1) : 0;
  const share = flooded.gatewayCpuPerSec > 0 ? (flooded.gatewayCpuPerSec - quiet.gatewayCpuPerSec) / flooded.gatewayCpuPerSec : 0;
  const answered = (code: string) => tally.answers.get(code) ?? 0;
  const other = [...tally.answers].filter(([code]) => code !== '4.00' && code !== '4.29');
  const achievedPerSec = tally.sendSec > 0 ? Math.round(tally.sent / tally.sendSec) : 0;
  say('');
  const row = (label: string, a: number | string, b: number | string) => say(`  ${label.padEnd(46)} ${String(a).padStart(9)} ${String(b).padStart(9)}`);
  row(`legitimate OSCORE load, ${ratePerSec}/s for ${durationSec} s`, 'no flood', 'flood');
  row('p50 (ms)', quiet.report.requests.latencyMs.p50, flooded.report.requests.latencyMs.p50);
  row('p99 (ms)', quiet.report.requests.latencyMs.p99, flooded.report.requests.latencyMs.p99);
  row(`sent (of ${Math.round(ratePerSec * durationSec)} due)`, quiet.report.requests.sent, flooded.report.requests.sent);
  row('success (answered as expected / sent)', quiet.successRate, flooded.successRate);
  row('timeouts', quiet.report.requests.timeouts, flooded.report.requests.timeouts);
  row('gateway CPU (s per s)', quiet.gatewayCpuPerSec, flooded.gatewayCpuPerSec);
  row('load generator CPU (s per s, this process)', quiet.generatorCpuPerSec, flooded.generatorCpuPerSec);
  row('UDP drops, full receive buffer (machine-wide)', quiet.udpDrops, flooded.udpDrops);
  say(`flood: ${tally.sent} forged OSCORE datagrams in ${round(tally.sendSec, 2)} s (${achievedPerSec}/s, ${tally.sendErrors} send errors); `
    + `answered 4.00 ${answered('4.00')}, 4.29 ${answered('4.29')}${other.map(([c, n]) => `, ${c} ${n}`).join('')}, unanswered ${tally.unanswered}`);
  say(`share of the gateway's CPU in phase B spent on the flood: ${round(share, 3)} (${round(floodCpuSec, 2)} s, ${usPerForgery} us per forged datagram)`);

  emitResult({
    oscore_flood_legit_rate_per_s: ratePerSec,
    oscore_noflood_legit_p99_ms: quiet.report.requests.latencyMs.p99,
    oscore_noflood_legit_success_rate: quiet.successRate,
    oscore_noflood_gateway_cpu_per_s: quiet.gatewayCpuPerSec,
    oscore_flood_legit_p99_ms: flooded.report.requests.latencyMs.p99,
    oscore_flood_legit_success_rate: flooded.successRate,
    oscore_flood_gateway_cpu_per_s: flooded.gatewayCpuPerSec,
    oscore_flood_udp_drops: flooded.udpDrops,
    oscore_flood_rate_per_s: achievedPerSec,
    oscore_flood_sent: tally.sent,
    oscore_flood_answered_400: answered('4.00'),
    oscore_flood_answered_429: answered('4.29'),
    oscore_flood_answered_other: other.reduce((sum, [, n]) => sum + n, 0),
    oscore_flood_unanswered: tally.unanswered,
    oscore_flood_gateway_cpu_share: round(share, 3),
    oscore_flood_gateway_cpu_us_per_forgery: usPerForgery,
  });
} finally {
  await Promise.all(floodSockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  await scenario.finish('oscore_flood_profile', loadWindow);
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

/**
 * The flood's datagrams, built before it starts: confirmable POST with only an OSCORE option
 * (a random 3-byte Partial IV, the victim's kid) and random bytes as the ciphertext. Datagram i
 * goes out on socket i % sockets; its CoAP token is i, to match the answer to it.
 */
function floodDatagrams(count: number, sockets: number, kid: Buffer): Buffer[] {
  const firstMessageId = Array.from({ length: sockets }, () => randomInt(MESSAGE_IDS));
  return Array.from({ length: count }, (_, i) => {
    const token = Buffer.alloc(4);
    token.writeUInt32BE(i);
    const option = writeOscoreOption({ partialIv: randomBytes(3), kid });
    return generate({
      code: 'POST', confirmable: true, token, payload: randomBytes(FORGED_CIPHERTEXT_BYTES),
      messageId: (firstMessageId[i % sockets]! + Math.floor(i / sockets)) % MESSAGE_IDS,
      options: [{ name: String(OSCORE_OPTION) as never, value: option }],
    });
  });
}
