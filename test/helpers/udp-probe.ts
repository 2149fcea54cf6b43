import { createSocket, type Socket } from 'node:dgram';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import type { Test } from 'tap';

/** How long a datagram may take before the wait fails the test (a failure guard, never a sync point). */
const WAIT_LIMIT_MS = 5000;

export interface Peer {
  address: string;
  port: number;
}

/** One datagram as it arrived: the bytes, who sent it, and the bytes parsed as CoAP when they parse. */
export interface Arrival {
  data: Buffer;
  from: Peer;
  packet: ParsedPacket | undefined;
}

/**
 * A bare UDP socket that sends exactly the bytes a test builds and keeps every datagram it gets,
 * parsed or not (a gateway that answers junk with junk must fail the test, not crash the helper).
 * Silence is proven without sleeping: `silence()` sends a CoAP ping and waits for its RST; what
 * arrived before that RST and was not claimed is what the gateway answered when it should not
 * have (datagrams from one socket to another on loopback keep their order). The gateway sends
 * the RST at once, so the barrier covers answers it would make without I/O: a test of silence
 * sends datagrams that, wrongly taken for requests, would be answered that way (no token to
 * verify, no backend call).
 */
export class UdpProbe {
  readonly #socket: Socket;
  readonly #target: Peer;
  readonly #inbox: Arrival[] = [];
  readonly #waiters: { match: (a: Arrival) => boolean; resolve: (a: Arrival) => void }[] = [];
  /** Ping message IDs come from the top of the space, so they never collide with a test's own. */
  #nextPingId = 0xff00;
  /** Every datagram received, in order. */
  readonly received: Arrival[] = [];

  private constructor(socket: Socket, target: Peer) {
    this.#socket = socket;
    this.#target = target;
    socket.on('message', (data, rinfo) => {
      let packet: ParsedPacket | undefined;
      try {
        packet = parse(data);
      } catch {
        packet = undefined;
      }
      const arrival: Arrival = { data, from: { address: rinfo.address, port: rinfo.port }, packet };
      this.received.push(arrival);
      const i = this.#waiters.findIndex((w) => w.match(arrival));
      if (i === -1) {
        this.#inbox.push(arrival);
        return;
      }
      this.#waiters.splice(i, 1)[0]!.resolve(arrival);
    });
  }

  /** Binds to `bindAddress:bindPort` (port 0: any), closed after the test. */
  static async open(t: Test, target: Peer, bindAddress = '127.0.0.1', bindPort = 0): Promise<UdpProbe> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(bindPort, bindAddress, () => { socket.off('error', reject); resolve(); });
    });
    t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    return new UdpProbe(socket, target);
  }

  get local(): Peer {
    const { address, port } = this.#socket.address();
    return { address, port };
  }

  send(datagram: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(datagram, this.#target.port, this.#target.address, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** The first datagram (received and not yet claimed, or arriving later) that matches; claimed. */
  next(match: (p: ParsedPacket) => boolean, what: string, limitMs = WAIT_LIMIT_MS): Promise<ParsedPacket> {
    const test = (a: Arrival) => a.packet !== undefined && match(a.packet);
    const i = this.#inbox.findIndex(test);
    if (i !== -1) return Promise.resolve(this.#inbox.splice(i, 1)[0]!.packet!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const w = this.#waiters.findIndex((x) => x.resolve === done);
        if (w !== -1) this.#waiters.splice(w, 1);
        reject(new Error(`no datagram within ${limitMs} ms: ${what}`));
      }, limitMs);
      timer.unref();
      const done = (a: Arrival) => { clearTimeout(timer); resolve(a.packet!); };
      this.#waiters.push({ match: test, resolve: done });
    });
  }

  /**
   * Sends a CoAP ping and waits for the RST with its message ID (RFC 7252 section 4.3). Resolves
   * with every datagram received before that RST that no `next` claimed, and forgets them.
   */
  async silence(): Promise<Arrival[]> {
    const messageId = this.#nextPingId;
    this.#nextPingId = messageId === 0xffff ? 0xff00 : messageId + 1;
    await this.send(ping(messageId));
    await this.next((p) => p.reset && p.code === '0.00' && p.messageId === messageId, `RST to ping ${messageId}`);
    return this.#inbox.splice(0);
  }

  /** Asserts, by the ping barrier above, that nothing unclaimed arrived since the last check; `what` names that. */
  async expectSilence(t: Test, what: string): Promise<void> {
    const stray = await this.silence();
    t.same(stray.map(describe), [], what);
  }
}

/** An Empty CON: a CoAP ping. */
export function ping(messageId: number): Buffer {
  return generate({ code: '0.00', messageId, confirmable: true, token: Buffer.alloc(0) });
}

/** A datagram in a form that reads well in a failed assertion. */
export function describe(a: Arrival): string {
  const p = a.packet;
  const what = p === undefined ? `unparseable ${a.data.subarray(0, 32).toString('hex')}`
    : `${p.reset ? 'RST' : p.ack ? 'ACK' : p.confirmable ? 'CON' : 'NON'} ${p.code} mid ${p.messageId} token ${p.token.toString('hex')}`
      + ` payload ${JSON.stringify(p.payload.subarray(0, 64).toString('latin1'))}`;
  return `${what} from ${a.from.address}:${a.from.port}`;
}
