import type { Peer } from './peer.ts';

/** RFC 7252 section 4.8: the transmission parameters, defaults of the RFC. */
export interface TransmissionParameters {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
}

export const DEFAULT_TRANSMISSION: TransmissionParameters = { ackTimeoutMs: 2000, ackRandomFactor: 1.5, maxRetransmit: 4 };

interface Outstanding {
  readonly peer: Peer;
  readonly datagram: Buffer;
  retransmissions: number;
  timeoutMs: number;
  timer: NodeJS.Timeout;
}

export interface SeparateResponsesOptions {
  send: (datagram: Buffer, peer: Peer) => void;
  maxOutstanding: number;
  parameters?: TransmissionParameters;
  random?: () => number;
  onRetransmit?: () => void;
  /** Given up after MAX_RETRANSMIT, or pushed out by a newer one when the table was full. */
  onGiveUp?: (reason: 'timeout' | 'evicted') => void;
}

/**
 * Confirmable separate responses (RFC 7252 section 5.2.2) waiting for the device's ACK:
 * retransmitted after ACK_TIMEOUT x a random factor, doubling each time, MAX_RETRANSMIT times
 * (section 4.2), and stopped by the matching ACK or RST. Bounded: the oldest goes first.
 */
export class SeparateResponses {
  readonly #outstanding = new Map<string, Outstanding>();
  readonly #options: SeparateResponsesOptions;
  readonly #parameters: TransmissionParameters;
  readonly #random: () => number;

  constructor(options: SeparateResponsesOptions) {
    this.#options = options;
    this.#parameters = options.parameters ?? DEFAULT_TRANSMISSION;
    this.#random = options.random ?? Math.random;
  }

  get size(): number {
    return this.#outstanding.size;
  }

  send(key: string, peer: Peer, datagram: Buffer): void {
    // The same message ID to the same peer again (the ID counter wrapped): the new one replaces it.
    this.#stop(key);
    if (this.#outstanding.size >= this.#options.maxOutstanding) {
      const oldest = this.#outstanding.keys().next();
      if (oldest.done !== true) {
        this.#stop(oldest.value);
        this.#options.onGiveUp?.('evicted');
      }
    }
    const { ackTimeoutMs, ackRandomFactor } = this.#parameters;
    const timeoutMs = ackTimeoutMs * (1 + this.#random() * (ackRandomFactor - 1));
    const entry: Outstanding = { peer, datagram, retransmissions: 0, timeoutMs, timer: this.#arm(key, timeoutMs) };
    this.#outstanding.set(key, entry);
    this.#options.send(datagram, peer);
  }

  /** The device's ACK or RST for this message: stop. False when nothing was waiting for it. */
  settle(key: string): boolean {
    return this.#stop(key);
  }

  clear(): void {
    for (const key of [...this.#outstanding.keys()]) this.#stop(key);
  }

  #arm(key: string, afterMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#retransmit(key), afterMs);
    timer.unref();
    return timer;
  }

  #retransmit(key: string): void {
    const entry = this.#outstanding.get(key);
    if (entry === undefined) return;
    if (entry.retransmissions >= this.#parameters.maxRetransmit) {
      this.#outstanding.delete(key);
      this.#options.onGiveUp?.('timeout');
      return;
    }
    entry.retransmissions += 1;
    entry.timeoutMs *= 2;
    entry.timer = this.#arm(key, entry.timeoutMs);
    this.#options.onRetransmit?.();
    this.#options.send(entry.datagram, entry.peer);
  }

  #stop(key: string): boolean {
    const entry = this.#outstanding.get(key);
    if (entry === undefined) return false;
    clearTimeout(entry.timer);
    this.#outstanding.delete(key);
    return true;
  }
}
