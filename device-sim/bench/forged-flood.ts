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
import type { Socket } from 'node:dgram';
import { generate } from 'coap-packet';
import { ACCESS_TOKEN_OPTION, ContentFormat, encodeCbor } from '../../gateway/src/wire/index.ts';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { DeviceClient } from '../src/device-client.ts';
import { SimError } from '../src/errors.ts';
import { runFleet } from '../src/fleet.ts';
import { HOST, MESSAGE_IDS, bindLoopback, legitimatePhase, listenForAnswers, round, type FloodTally } from './flood-lib.ts';
import { emitResult, flag, say, startGatewayScenario } from './lib.ts';

const ratePerSec = Number(flag('rate') ?? 1000);
const durationSec = Number(flag('duration') ?? 8);
const floodPerSec = Number(flag('flood-rate') ?? 4000);
const floodSocketCount = Number(flag('flood-sockets') ?? 4);

const floodCount = Math.round(floodPerSec * durationSec);
checkOptions();

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
