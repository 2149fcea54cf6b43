import { Socket, type SocketOptions } from 'node:dgram';

/**
 * A UDP socket that counts the bytes of every datagram it sends and receives, whoever sends
 * them (node-coap's retransmissions and ACKs included), so byte figures are what went on the air.
 */
export class CountingSocket extends Socket {
  bytesSent = 0;
  bytesReceived = 0;

  constructor(options: SocketOptions) {
    // @types/node declares no constructor for dgram.Socket; at run time it is
    // Socket(type | options, listener), which is all createSocket() calls.
    super(options as never);
    this.on('message', (msg: Buffer) => { this.bytesReceived += msg.length; });
  }

  // node-coap calls send(msg, offset, length, port, address, callback); the one-buffer forms count the buffer.
  override send(...args: unknown[]): void {
    const [msg, , length] = args;
    if (typeof length === 'number') this.bytesSent += length;
    else if (msg instanceof Uint8Array) this.bytesSent += msg.length;
    (super.send as (...a: unknown[]) => void)(...args);
  }
}
