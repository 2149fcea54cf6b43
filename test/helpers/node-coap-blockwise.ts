import { createSocket } from 'node:dgram';
import { Agent, type IncomingMessage, type OutgoingMessage } from 'coap';
import type { Test } from 'tap';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';

// node-coap 1.5.0 as a block-wise device. Its agent does Block2 by itself (it asks for the next
// block while the answer says "more"), but Block1 only when the request carries a Block1 option:
// without one, a payload over 1280 bytes with its options fails in coap-packet's generate()
// ("Max packet size is 1280") before anything is sent. The option's first byte is taken as the SZX.

export interface NodeCoapRequest {
  /** Where to send it (default 127.0.0.1). */
  host?: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: string;
  accessToken?: string;
  payload?: Buffer;
  contentFormat?: number;
  accept?: number;
  /** Upload block-wise with blocks of 2^(szx+4) bytes. */
  block1Szx?: number;
  /** Ask for the answer in blocks of 2^(szx+4) bytes from the start (RFC 7959 section 2.4). */
  block2Szx?: number;
  /** The Echo option (RFC 9175): node-coap does not repeat a request with a 4.01's Echo value by itself. */
  echo?: Buffer;
}

export interface NodeCoapAnswer {
  code: string;
  /** The whole payload (node-coap reassembles Block2). */
  payload: Buffer;
  headers: IncomingMessage['headers'];
  /** The answer's Echo option (RFC 9175 section 2.2), which node-coap leaves out of `headers`. */
  echo: Buffer | undefined;
}

const ECHO_OPTION = '252';

/**
 * A node-coap agent of its own (never the library's global one) on a socket of ours bound to
 * loopback; the socket is closed after the test (an agent that owns its socket may never call
 * back from close() once block-wise requests have left entries behind).
 */
export async function openNodeCoapAgent(t: Test, localAddress = '127.0.0.1'): Promise<Agent> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, localAddress, () => { socket.off('error', reject); resolve(); });
  });
  const agent = new Agent({ socket });
  t.teardown(() => {
    agent.close();
    return new Promise<void>((resolve) => socket.close(() => resolve()));
  });
  return agent;
}

export function nodeCoapRequest(agent: Agent, port: number, r: NodeCoapRequest): Promise<NodeCoapAnswer> {
  return new Promise((resolve, reject) => {
    const req: OutgoingMessage = agent.request({
      hostname: r.host ?? '127.0.0.1', port, method: r.method ?? 'GET', pathname: r.path, query: r.query, confirmable: true,
    });
    if (r.contentFormat !== undefined) req.setOption('Content-Format', r.contentFormat as never);
    if (r.accept !== undefined) req.setOption('Accept', r.accept as never);
    if (r.accessToken !== undefined) req.setOption(String(ACCESS_TOKEN_OPTION), Buffer.from(r.accessToken));
    if (r.block1Szx !== undefined) req.setOption('Block1', Buffer.from([r.block1Szx]));
    if (r.block2Szx !== undefined) req.setOption('Block2', Buffer.from([r.block2Szx]));
    if (r.echo !== undefined) req.setOption(ECHO_OPTION, r.echo);
    const timer = setTimeout(() => {
      agent.abort(req);
      reject(new Error(`node-coap: no answer in 15 s to ${r.method ?? 'GET'} ${r.path}`));
    }, 15_000);
    timer.unref();
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      const echo = res._packet.options?.find((o) => String(o.name) === ECHO_OPTION)?.value;
      resolve({ code: res.code, payload: res.payload, headers: res.headers, echo: Buffer.isBuffer(echo) ? echo : undefined });
    });
    req.on('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(r.payload);
  });
}
