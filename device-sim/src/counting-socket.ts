import { Socket, type SocketOptions } from 'node:dgram';

/** IEEE 802.15.4 (2.4 GHz O-QPSK PHY): aMaxPHYPacketSize, the largest frame (PSDU). */
export const IEEE802154_FRAME_BYTES = 127;
/**
 * MAC header and FCS of a data frame, no security: frame control 2, sequence 1, PAN id 2 (compressed
 * to one), extended addresses 8 + 8, FCS 2 = 23 bytes; 25 is the figure usually assumed.
 */
export const IEEE802154_MAC_OVERHEAD_BYTES = 25;
/** 6LoWPAN (RFC 6282): IPHC-compressed IPv6 header plus NHC-compressed UDP header, combined (about 10 bytes). */
export const LOWPAN_IPHC_UDP_BYTES = 10;
/**
 * CoAP bytes one 802.15.4 frame carries: 127 - 25 (MAC + FCS) - 10 (6LoWPAN IPHC + NHC UDP) = 92.
 * A larger datagram takes ceil(bytes / 92) frames; 6LoWPAN fragmentation headers (RFC 4944,
 * 4-5 bytes a fragment) are not counted, so this is a lower bound for multi-frame datagrams.
 */
export const COAP_BYTES_PER_FRAME = IEEE802154_FRAME_BYTES - IEEE802154_MAC_OVERHEAD_BYTES - LOWPAN_IPHC_UDP_BYTES;
/** The assumption behind `framesSent`, as one line for reports. */
export const FRAME_ASSUMPTION = `IEEE 802.15.4 frames of ${IEEE802154_FRAME_BYTES} bytes - ${IEEE802154_MAC_OVERHEAD_BYTES} MAC header+FCS `
  + `- ${LOWPAN_IPHC_UDP_BYTES} 6LoWPAN IPHC+NHC UDP = ${COAP_BYTES_PER_FRAME} CoAP bytes a frame; frames = ceil(datagram / ${COAP_BYTES_PER_FRAME}) per datagram`;

/** Estimated 802.15.4 frames for one CoAP datagram of `bytes` (an empty ACK still takes a frame). */
export function framesFor(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / COAP_BYTES_PER_FRAME));
}

/** What a socket has sent and received so far; the difference of two is one exchange's traffic. */
export interface Traffic {
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  /** Estimated 802.15.4 frames of the datagrams sent (framesFor each). */
  framesSent: number;
}

/**
 * A UDP socket that counts the bytes of every datagram it sends and receives, whoever sends
 * them (node-coap's retransmissions and ACKs included), so byte figures are what went on the air.
 */
export class CountingSocket extends Socket {
  bytesSent = 0;
  bytesReceived = 0;
  datagramsSent = 0;
  framesSent = 0;
  /** The last datagram sent (a view of the sender's buffer, not a copy): what a capture of the air would hold. */
  lastSent: Buffer | undefined;

  constructor(options: SocketOptions) {
    // @types/node declares no constructor for dgram.Socket; at run time it is
    // Socket(type | options, listener), which is all createSocket() calls.
    super(options as never);
    this.on('message', (msg: Buffer) => { this.bytesReceived += msg.length; });
  }

  // node-coap calls send(msg, offset, length, port, address, callback); the one-buffer forms count the buffer.
  override send(...args: unknown[]): void {
    const [msg, offset, length] = args;
    const bytes = typeof length === 'number' ? length : msg instanceof Uint8Array ? msg.length : undefined;
    if (Buffer.isBuffer(msg) && bytes !== undefined) {
      // send(msg, offset, length, port, ...) or send(msg, port, ...): an offset only with a length.
      const from = typeof length === 'number' && typeof offset === 'number' ? offset : 0;
      this.lastSent = msg.subarray(from, from + bytes);
    }
    if (bytes !== undefined) {
      this.bytesSent += bytes;
      this.datagramsSent += 1;
      this.framesSent += framesFor(bytes);
    }
    (super.send as (...a: unknown[]) => void)(...args);
  }

  traffic(): Traffic {
    return { bytesSent: this.bytesSent, bytesReceived: this.bytesReceived, datagramsSent: this.datagramsSent, framesSent: this.framesSent };
  }
}
