import { createSocket, type Socket } from 'node:dgram';
import { createServer, type IncomingMessage, type OutgoingMessage } from 'coap';

export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The receive queue of the echo servers' sockets: the gateway's default (udpRecvBufferBytes), so
 * that a benchmark compares the stacks, not the kernel's default queue (about 208 KiB), which
 * overflows in a 30 ms stall at a few thousand requests/s and turns a drop into a 2 s retransmission.
 */
export const ECHO_RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** A UDP socket bound to host:port for an echo server (Linux caps the queue at net.core.rmem_max). */
export async function bindEchoSocket(host: string, port: number): Promise<Socket> {
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: ECHO_RECV_BUFFER_BYTES });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => { socket.off('error', reject); resolve(); });
  });
  return socket;
}

/**
 * The benchmark's ceiling: a plain node-coap server that answers every request with its own
 * payload (2.01 to a POST, 2.05 otherwise). No auth, no bridge: what the stack alone costs.
 */
export async function buildEchoServer(host = '127.0.0.1', port = 0): Promise<EchoServer> {
  const socket = await bindEchoSocket(host, port);
  const server = createServer((req: IncomingMessage, res: OutgoingMessage) => {
    res.code = req.method === 'POST' ? '2.01' : '2.05';
    res.end(req.payload);
  });
  await new Promise<void>((resolve) => server.listen(socket, () => resolve()));
  return {
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => {
      server.close();
      socket.close(() => resolve());
    }),
  };
}
