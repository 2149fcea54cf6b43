import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { REPO_ROOT } from '../helpers/cli-run.ts';

// `npx device-sim backend` as the README's tour runs it: its own process, a free port, stopped by
// SIGTERM. With --print it shows what each request brought; without, it prints nothing per request.

interface BackendProcess {
  url: string;
  /** The next line it prints on stdout. */
  nextLine(): Promise<string>;
  /** SIGTERM, then every line it printed after the last nextLine() and its exit code. */
  stop(): Promise<{ lines: string[]; code: number | null }>;
}

async function startBackend(t: Test, extra: readonly string[]): Promise<BackendProcess> {
  const child = spawn(process.execPath, ['device-sim/bin/device-sim.js', 'backend', '--port', '0', ...extra],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  // 'close', not 'exit': stdout has been read to its end by then.
  const exited = once(child, 'close') as Promise<[number | null]>;
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(line);
    else lines.push(line);
  });
  const nextLine = () => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise<string>((resolve) => waiting.push(resolve));
  };
  const { backend } = JSON.parse(await nextLine()) as { backend: string };
  return {
    url: backend,
    nextLine,
    async stop() {
      child.kill('SIGTERM');
      const [code] = await exited;
      return { lines: lines.splice(0), code };
    },
  };
}

const reading = { celsius: 21.5, battery_mv: 2975 };

function postReading(url: string): Promise<Response> {
  return fetch(`${url}/devices/sensor-1/telemetry/temp`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-device-id': 'sensor-1' }, body: JSON.stringify(reading),
  });
}

t.test('device-sim backend --print: one JSON line per request, with method, path, X-Device-Id and the body', async (t) => {
  const backend = await startBackend(t, ['--print']);
  const posted = await postReading(backend.url);
  t.equal(posted.status, 201, 'a reading is answered 201, as without --print');
  t.same(await posted.json(), { stored: true });
  t.same(JSON.parse(await backend.nextLine()),
    { method: 'POST', path: '/devices/sensor-1/telemetry/temp', deviceId: 'sensor-1', body: reading }, 'the reading, as JSON');

  const config = await fetch(`${backend.url}/devices/sensor-1/config`, { headers: { 'x-device-id': 'sensor-1' } });
  t.equal(config.status, 200);
  await config.arrayBuffer();
  t.same(JSON.parse(await backend.nextLine()), { method: 'GET', path: '/devices/sensor-1/config', deviceId: 'sensor-1', body: null },
    'a request without a body: body null');

  const text = await fetch(`${backend.url}/elsewhere`, { method: 'PUT', body: 'not json' });
  t.equal(text.status, 404);
  await text.arrayBuffer();
  t.same(JSON.parse(await backend.nextLine()), { method: 'PUT', path: '/elsewhere', deviceId: null, body: 'not json' },
    'a body that is not JSON: its text; no X-Device-Id: null');

  const { lines, code } = await backend.stop();
  t.equal(code, 0, 'SIGTERM stops it cleanly');
  t.same(lines.map((line) => JSON.parse(line) as unknown), [{ answered: 3 }], 'then it prints the count, as without --print');
});

t.test('device-sim backend without --print: no line per request, only the count at the end', async (t) => {
  const backend = await startBackend(t, []);
  const posted = await postReading(backend.url);
  t.equal(posted.status, 201);
  await posted.arrayBuffer();
  const { lines, code } = await backend.stop();
  t.equal(code, 0);
  t.same(lines.map((line) => JSON.parse(line) as unknown), [{ answered: 1 }], 'nothing per request');
});
