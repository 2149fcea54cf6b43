import { performance } from 'node:perf_hooks';
import { ErrorKey } from '../../gateway/src/wire/index.ts';
import type { Traffic } from './counting-socket.ts';
import type { CoapAnswer } from './device-client.ts';
import type { ExchangeStats } from './report.ts';
import { LatencyHistogram, Tally, round3 } from './stats.ts';

const MAX_ERROR_SAMPLES = 5;

/** Where an exchange's latency counts from; an exchange that tries again (a probe) moves it to its last try. */
export interface LatencyClock {
  startMs: number;
}

/** Counts one kind of exchange (readings, or logins): codes, wire errors, latency, bytes. */
export class ExchangeRecorder {
  sent = 0;
  answered = 0;
  timeouts = 0;
  errors = 0;
  readonly byCode = new Tally();
  readonly byWireError = new Tally();
  readonly latency = new LatencyHistogram();
  bytesSent = 0;
  bytesReceived = 0;
  datagramsSent = 0;
  framesSent = 0;
  readonly #errorSamples: Set<string>;

  /** `errorSamples` is shared by the recorders of one run. */
  constructor(errorSamples: Set<string>) {
    this.#errorSamples = errorSamples;
  }

  /**
   * Counts one exchange of `client`: sent at once; then the answer `send` resolves with, and its
   * latency from `startMs` (now, or an open loop's due time), or its failure (a timeout, an
   * error); and, either way, what the device's socket moved meanwhile. Undefined without an answer.
   */
  async measure(client: { traffic(): Traffic }, send: (clock: LatencyClock) => Promise<CoapAnswer>,
    startMs = performance.now()): Promise<CoapAnswer | undefined> {
    const before = client.traffic();
    const clock: LatencyClock = { startMs };
    this.sent += 1;
    try {
      const answer = await send(clock);
      this.answer(answer, performance.now() - clock.startMs);
      return answer;
    } catch (err) {
      this.failure(err);
      return undefined;
    } finally {
      this.traffic(before, client.traffic());
    }
  }

  answer(answer: CoapAnswer, latencyMs: number): void {
    this.answered += 1;
    this.byCode.add(answer.code);
    const wire = wireErrorOf(answer);
    if (wire !== undefined) this.byWireError.add(String(wire));
    this.latency.record(latencyMs);
  }

  failure(err: unknown): void {
    if ((err as { code?: unknown }).code === 'COAP_TIMEOUT') {
      this.timeouts += 1;
      return;
    }
    this.errors += 1;
    if (this.#errorSamples.size < MAX_ERROR_SAMPLES) this.#errorSamples.add((err as Error).message ?? String(err));
  }

  bytes(sent: number, received: number): void {
    this.bytesSent += sent;
    this.bytesReceived += received;
  }

  /** One exchange's traffic: what the device's socket counted from `before` to `after`. */
  traffic(before: Traffic, after: Traffic): void {
    this.bytes(after.bytesSent - before.bytesSent, after.bytesReceived - before.bytesReceived);
    this.datagramsSent += after.datagramsSent - before.datagramsSent;
    this.framesSent += after.framesSent - before.framesSent;
  }

  stats(): ExchangeStats {
    const perRequest = (n: number) => (this.sent === 0 ? 0 : round3(n / this.sent));
    return {
      sent: this.sent,
      answered: this.answered,
      timeouts: this.timeouts,
      errors: this.errors,
      byCode: this.byCode.toJSON(),
      byWireError: this.byWireError.toJSON(),
      latencyMs: this.latency.summary(),
      bytes: {
        sent: this.bytesSent,
        received: this.bytesReceived,
        sentPerRequest: this.sent === 0 ? 0 : round3(this.bytesSent / this.sent),
        receivedPerRequest: this.sent === 0 ? 0 : round3(this.bytesReceived / this.sent),
      },
      radio: {
        datagramsSent: this.datagramsSent,
        framesSent: this.framesSent,
        bytesPerRequest: perRequest(this.bytesSent),
        datagramsPerRequest: perRequest(this.datagramsSent),
        framesPerRequest: perRequest(this.framesSent),
      },
    };
  }
}

/** Key 0 of a CBOR error body `{0: wire error, 4: server time}`, if the answer has one. */
export function wireErrorOf(answer: CoapAnswer): number | undefined {
  if (answer.code.startsWith('2.') || !(answer.body instanceof Map)) return undefined;
  const code = (answer.body as Map<unknown, unknown>).get(ErrorKey.code);
  return typeof code === 'number' ? code : undefined;
}

/** Key 4 of an error body: the gateway's clock, which every error body carries for devices that have none. */
export function serverTimeOf(answer: CoapAnswer): number | undefined {
  if (answer.code.startsWith('2.') || !(answer.body instanceof Map)) return undefined;
  const time = (answer.body as Map<unknown, unknown>).get(ErrorKey.serverTimeSec);
  return typeof time === 'number' ? time : undefined;
}
