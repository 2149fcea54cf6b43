/** The wall clock the fleet reads; injectable so tests move time instead of waiting. */
export interface WallClock {
  nowMs(): number;
  /** Lets `ms` of wall-clock time pass. */
  sleep(ms: number): Promise<void>;
}

export const realClock: WallClock = {
  nowMs: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => { setTimeout(resolve, ms); }),
};

/**
 * A device's idea of time. Many devices have no real-time clock, or one that is off: the device
 * reads its own (skewed) clock and corrects it with the server time (whole seconds) that the
 * gateway puts in every 2.01 and 4.01 body (key 4 of the wire contract).
 */
export class DeviceClock {
  readonly #wall: WallClock;
  readonly #skewMs: number;
  readonly #corrects: boolean;
  #offsetMs = 0;

  constructor(wall: WallClock, skewMs: number, corrects: boolean) {
    this.#wall = wall;
    this.#skewMs = skewMs;
    this.#corrects = corrects;
  }

  /** The device's own clock, off by its skew. */
  nowMs(): number {
    return this.#wall.nowMs() + this.#skewMs;
  }

  /**
   * Learns the gateway's time from an answer that just arrived. The gateway sends whole seconds
   * (floored), so its clock read somewhere in [s, s + 1): take the middle, off by 0.5 s at most.
   */
  learn(serverTimeSec: number): void {
    this.#offsetMs = serverTimeSec * 1000 + 500 - this.nowMs();
  }

  /** The device's estimate of the gateway's clock; a device that does not correct trusts its own. */
  serverNowMs(): number {
    return this.#corrects ? this.nowMs() + this.#offsetMs : this.nowMs();
  }
}
