import { createSocket } from 'node:dgram';
import { createServer, type IncomingMessage, type OutgoingMessage } from 'coap';

export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The benchmark's ceiling: a plain node-coap server that answers every request with its own
 * payload (2.01 to a POST, 2.05 otherwise). No auth, no bridge: what the stack alone costs.
 */
export async function buildEchoServer(host = '127.0.0.1', port = 0): Promise<EchoServer> {
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => { socket.off('error', reject); resolve(); });
  });
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
