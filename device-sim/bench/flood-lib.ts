// What the flood benchmarks share (forged-flood.ts: forged tokens; oscore-flood.ts: forged OSCORE
// datagrams): the same legitimate open-loop load measured twice in one gateway process, alone and
// beside a flood sent from other UDP sockets on 127.0.0.1, open loop on a schedule whatever the
// answers do, each answer matched to its datagram by a 4-byte CoAP token (the datagram's index).
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { generate, parse } from 'coap-packet';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { runFleet, type FleetOptions } from '../src/fleet.ts';
import type { FleetReport } from '../src/report.ts';
import { loadPhaseCpu, printReport } from './lib.ts';

export const HOST = '127.0.0.1';
/** The flood sends what is due each tick: open loop, on schedule, whatever the answers do. */
const FLOOD_TICK_MS = 5;
/** After its last datagram the flood waits for answers this long at most, and 1 s after the last one. */
const FLOOD_DRAIN_MS = 5000;
const FLOOD_QUIET_MS = 1000;
/** Message IDs a socket can use before one repeats (and the gateway answers it from its exchange table). */
export const MESSAGE_IDS = 0x10000;

export interface FloodTally {
  sent: number;
  sendErrors: number;
  sendSec: number;
  /** Answers by CoAP code, one per forged request (a retransmitted separate response counts once). */
  answers: Map<string, number>;
  unanswered: number;
}

export interface PhaseFigures {
  report: FleetReport;
  successRate: number;
  gatewayCpuPerSec: number;
  generatorCpuPerSec: number;
  udpDrops: number;
  window: Promise<ProfileWindow | undefined>;
}

/** One run of the legitimate load, measured from its load phase on; `onLoad` is called (repeatedly) once that starts. */
export async function legitimatePhase(title: string, fleet: FleetOptions, gatewayPid: number, onLoad?: () => void): Promise<PhaseFigures> {
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

/** A UDP socket of the flood's on 127.0.0.1. */
export function bindLoopback(): Promise<Socket> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, HOST, () => { socket.off('error', reject); resolve(socket); });
  });
}

/** Counts the gateway's answers on the flood's sockets, and sends the flood on them. */
export function listenForAnswers(sockets: Socket[], port: number, capacity: number) {
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

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
