import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { gatewayCli } from '../../device-sim/src/spawn-gateway.ts';
import { encodeCbor } from '../../gateway/src/wire/index.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { nodeCoapRequest, openNodeCoapAgent } from '../helpers/node-coap-blockwise.ts';
import { startRedis } from '../helpers/redis-server.ts';

// The operator guide's nginx example, run as written in front of two gateways on one Redis: only the
// upstream addresses and the listen address are put in for loopback ones. Each device sends from
// an address of its own (127.0.0.0/8 is all loopback), as devices behind a balancer do.

const NGINX = process.env.NGINX ?? 'nginx';
/** Debian builds the stream module as a dynamic module (package libnginx-mod-stream). */
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const DEVICES = 16;
const START_LIMIT_MS = 10_000;

const guide = await readFile(new URL('../../gateway/docs/operator-guide.md', import.meta.url), 'utf8');

/** The operator guide's `nginx` block with loopback addresses in place of its example ones. */
function nginxConfigFromReadme(t: Test, gateways: readonly GatewayProcess[], listen: string): string {
  const block = /```nginx\n([\s\S]*?)```/.exec(guide)?.[1];
  if (block === undefined) throw new Error('the operator guide has no ```nginx block');
  const servers = [...block.matchAll(/^(\s*)server 10\.0\.0\.\d+:5683;$/gm)];
  t.equal(servers.length, gateways.length, 'the guide\'s upstream lists two gateways, as this test runs');
  let config = block;
  servers.forEach((match, i) => { config = config.replace(match[0], `${match[1]}server 127.0.0.1:${gateways[i]!.port};`); });
  t.match(config, /^\s*listen 5683 udp;$/m, 'the guide\'s nginx listens on UDP 5683');
  return config.replace(/^(\s*)listen 5683 udp;$/m, `$1listen ${listen}:5683 udp;`);
}

/** nginx in the foreground, ready once its master says it started a worker; stopped after the test. */
async function startNginx(t: Test, stream: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-nginx-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'nginx.conf');
  await writeFile(file, [
    existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};` : '',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    'error_log stderr notice;',
    'events { worker_connections 1024; }',
    stream,
  ].join('\n'));
  const child: ChildProcess = spawn(NGINX, ['-c', file, '-p', dir, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`nginx did not start in ${START_LIMIT_MS} ms:\n${lines.join('\n')}`)), START_LIMIT_MS);
    child.once('error', (err) => { clearTimeout(guard); reject(err); });
    child.once('exit', (code) => { clearTimeout(guard); reject(new Error(`nginx exited with ${code}:\n${lines.join('\n')}`)); });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      lines.push(line);
      if (/start worker process/.test(line)) {
        clearTimeout(guard);
        resolve();
      }
    });
  });
}

async function nginxAvailable(t: Test): Promise<boolean> {
  const found = await new Promise<boolean>((resolve) => {
    const probe = spawn(NGINX, ['-v'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
  // Fails (never skips), as the libcoap interoperability test: CI installs it with `make tools`.
  if (!found) t.fail('nginx is not installed: install the Debian packages nginx and libnginx-mod-stream (or `make tools`)');
  else if (process.getuid?.() !== 0) t.fail('the guide\'s nginx example binds transparently (proxy_bind ... transparent): run as root');
  return found && process.getuid?.() === 0;
}

t.test('the operator guide\'s nginx in front of two gateways: one device, one gateway; the gateways see each device\'s address', async (t) => {
  if (!(await nginxAvailable(t))) return;
  const redis = await startRedis(t);
  const dir = await mkdtemp(join(tmpdir(), 'gw-lb-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'devices.json');
  await gatewayCli(['devices', 'add', '--count', String(DEVICES), '--prefix', 'lb-', '--out', file,
    '--scope', 'telemetry:write', 'config:read', '--state', join(dir, 'cli-state'), '--store', redis.url]);
  const devices = (JSON.parse(await readFile(file, 'utf8')) as { id: string; secret: string }[])
    .map(({ id, secret }) => ({ id, secret: Buffer.from(secret, 'hex') }));
  const gateways = await Promise.all([0, 1].map(() => startGatewayProcess(t, { store: redis.url, provisioned: devices })));

  // A /16 of loopback of this run's own: nginx listens on .0.1, device i sends from .1.i.
  const net = `127.${randomInt(50, 250)}.${randomInt(0, 256)}`;
  const listen = `${net}.1`;
  await startNginx(t, nginxConfigFromReadme(t, gateways, listen));

  // The backend answers GET /config late, so that each gateway answers it as a separate response:
  // an empty ACK first, the answer in a CON of its own later, through the same nginx session.
  for (const gateway of gateways) {
    gateway.backend.setHandler((req, res) => {
      const answer = () => res.writeHead(req.method === 'GET' ? 200 : 201, { 'content-type': 'application/json' }).end('{"ok":true}');
      if (req.method === 'GET') setTimeout(answer, 200);
      else answer();
    });
  }

  const clients: DeviceClient[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  for (const [i, device] of devices.entries()) {
    const address = `${net}.${i + 10}`;
    const client = await DeviceClient.open(listen, 5683, { timeoutMs: 10_000, localAddress: address });
    clients.push(client);
    const { answer, tokens } = await client.login(device.id, device.secret);
    t.equal(answer.code, '2.01', `${device.id} logs in through nginx`);
    for (let reading = 0; reading < 2; reading += 1) {
      const sent = await client.send({ method: 'POST', path: '/telemetry/temp', body: new Map([[1, 21.5 + reading]]), token: tokens!.accessToken });
      t.equal(sent.code, '2.01', `${device.id}: reading ${reading + 1}`);
    }
    t.equal((await client.send({ method: 'GET', path: '/config', token: tokens!.accessToken })).code, '2.05',
      `${device.id}: a separate response reaches it through nginx`);
  }

  // A block-wise upload (Block1, 256-byte blocks) from one device's address: all its blocks to one gateway.
  const uploader = devices[0]!;
  const uploaderAddress = `${net}.10`;
  const agent = await openNodeCoapAgent(t, uploaderAddress);
  const upload = Buffer.alloc(3000, 0x5a);
  const loggedIn = await clients[0]!.login(uploader.id, uploader.secret);
  const answer = await nodeCoapRequest(agent, 5683, {
    host: listen, method: 'POST', path: '/telemetry/blob', accessToken: loggedIn.tokens!.accessToken,
    payload: encodeCbor(upload), contentFormat: 60, block1Szx: 4,
  });
  t.equal(answer.code, '2.01', 'a 3 KB block-wise upload through nginx is answered 2.01');

  const servedBy = new Map<string, Set<number>>();
  gateways.forEach((gateway, g) => {
    for (const request of gateway.backend.requests) {
      const id = String(request.headers['x-device-id']);
      servedBy.set(id, (servedBy.get(id) ?? new Set()).add(g));
      const index = devices.findIndex((d) => d.id === id);
      t.equal(request.headers['x-forwarded-for'], `${net}.${index + 10}`, `gateway ${g + 1} sees ${id}'s own address`);
    }
  });
  t.same([...servedBy.keys()].sort(), devices.map((d) => d.id).sort(), 'every device reached the backend');
  for (const [id, served] of servedBy) t.equal(served.size, 1, `every request of ${id} went to one gateway`);
  const perGateway = gateways.map((_, g) => [...servedBy.values()].filter((s) => s.has(g)).length);
  t.ok(perGateway.every((n) => n > 0), `both gateways serve devices (${perGateway.join(' and ')} of ${DEVICES})`);
  const blob = gateways.flatMap((g) => g.backend.requests).filter((r) => r.url.endsWith('/telemetry/blob'));
  t.equal(blob.length, 1, 'the upload reached the backend once');
  t.equal(JSON.parse(blob[0]!.body.toString()), upload.toString('base64url'), 'whole');
  for (const gateway of gateways) t.ok(gateway.alive(), 'gateway still running');
});
