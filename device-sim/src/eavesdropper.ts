import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import { ContentFormat, decodeCbor } from '../../gateway/src/wire/index.ts';
import { CoapTimeoutError, type CoapAnswer } from './device-client.ts';

/** RFC 7252 section 4.8: ACK_TIMEOUT, the first wait before a confirmable message is sent again (doubled each time). */
const ACK_TIMEOUT_MS = 2000;

/**
 * Someone in radio range who recorded a device's datagram and sends it again, byte for byte,
 * from a socket of its own (another port: the device's own would make it a CoAP retransmission,
 * which the gateway answers from its deduplication table with the answer it already sent). It
 * resends a confirmable copy on RFC 7252's schedule until `timeoutMs`, ACKs a separate
 * response, and resolves with the gateway's answer as the device client reports one
 * (`protection` 'oscore' when it carries an OSCORE option, which an eavesdropper cannot open).
 */
export async function replayDatagram(host: string, port: number, datagram: Buffer, timeoutMs: number): Promise<CoapAnswer> {
  const sent = parse(datagram);
  const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host === '::1' || host.startsWith('127.') ? host : undefined, () => { socket.off('error', reject); resolve(); });
  });
  try {
    return await new Promise<CoapAnswer>((resolve, reject) => {
      let waitMs = ACK_TIMEOUT_MS;
      let retransmit: NodeJS.Timeout | undefined;
      const send = () => {
        socket.send(datagram, port, host);
        if (!sent.confirmable) return;
        retransmit = setTimeout(send, waitMs);
        waitMs *= 2;
      };
      const deadline = setTimeout(() => {
        clearTimeout(retransmit);
        reject(new CoapTimeoutError(`CoAP timeout: no answer to the replayed datagram in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.on('message', (msg) => {
        let packet: ParsedPacket;
        try {
          packet = parse(msg);
        } catch {
          return;
        }
        if (packet.confirmable) socket.send(generate({ code: '0.00', ack: true, messageId: packet.messageId, token: Buffer.alloc(0) }), port, host);
        if ((packet.ack || packet.reset) && packet.messageId === sent.messageId) {
          clearTimeout(retransmit);
          if (packet.reset) {
            clearTimeout(deadline);
            reject(new Error('the gateway reset the replayed datagram (RST)'));
            return;
          }
          // An empty ACK: the answer follows as a separate response.
          if (packet.code === '0.00') return;
        } else if (packet.ack || packet.reset || packet.code === '0.00' || !packet.token.equals(sent.token)) {
          return;
        }
        clearTimeout(retransmit);
        clearTimeout(deadline);
        resolve(answerOf(packet));
      });
      send();
    });
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

function answerOf(packet: ParsedPacket): CoapAnswer {
  const uint = (name: string) => {
    const value = packet.options.find((o) => o.name === name)?.value;
    return value === undefined ? undefined : value.reduce((n, byte) => n * 256 + byte, 0);
  };
  const contentFormat = uint('Content-Format');
  let body: unknown;
  if (contentFormat === ContentFormat.cbor && packet.payload.length > 0) {
    try {
      body = decodeCbor(packet.payload);
    } catch {
      body = undefined;
    }
  }
  const protectedAnswer = packet.options.some((o) => o.name === 'OSCORE');
  return { code: packet.code, payload: packet.payload, contentFormat, maxAgeSec: uint('Max-Age'), body, protection: protectedAnswer ? 'oscore' : 'none' };
}
