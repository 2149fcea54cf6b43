import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface RunningRedis {
  /** `redis+unix://<socketPath>`, the form `buildRedisStore` takes. */
  url: string;
  socketPath: string;
  /** Stops the server (SIGTERM) and resolves once it has exited: the store sees Redis go down. */
  stop(): Promise<void>;
  /** Starts it again on the same socket, empty (no persistence): the store sees Redis come back. */
  start(): Promise<void>;
}

/** Debian's package; CI and `make tools` install it. */
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
// 'Ready to accept connections' (TCP), 'The server is now ready to accept connections at <socket>' (unix only).
const READY_LINE = /ready to accept connections/i;
/** A failure guard on start-up, never a sync point: readiness is read from the server's own log. */
const START_LIMIT_MS = 10_000;
const STOP_LIMIT_MS = 5000;

/**
 * A real redis-server of its own for one test file: a unix socket in a fresh temporary directory,
 * no TCP port (`--port 0`). It keeps its data across `stop()` and `start()` (an append-only file in
 * that directory, fsynced on every write), as a production Redis configured for persistence does:
 * a restart tests an outage, not a lost database. Stopped and removed in teardown.
 */
export async function startRedis(t: Test): Promise<RunningRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-redis-'));
  const socketPath = join(dir, 'redis.sock');
  const args = ['--port', '0', '--unixsocket', socketPath, '--unixsocketperm', '700', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
    '--dir', dir, '--loglevel', 'notice'];
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child !== undefined) throw new Error('redis-server is already running');
    child = await spawnUntilReady(args);
    child.once('exit', () => {
      child = undefined;
    });
  };
  const stop = async (): Promise<void> => {
    const running = child;
    if (running === undefined) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    const killer = setTimeout(() => running.kill('SIGKILL'), STOP_LIMIT_MS);
    running.kill('SIGTERM');
    await exited;
    clearTimeout(killer);
  };

  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  await start();
  return { url: `redis+unix://${socketPath}`, socketPath, stop, start };
}

function spawnUntilReady(args: string[]): Promise<ChildProcess> {
  return new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const fail = (error: Error): void => {
      clearTimeout(guard);
      child.kill('SIGKILL');
      reject(error);
    };
    const guard = setTimeout(() => fail(new Error(`redis-server not ready after ${START_LIMIT_MS} ms:\n${output}`)), START_LIMIT_MS);
    child.once('error', (error: NodeJS.ErrnoException) => {
      fail(error.code === 'ENOENT'
        ? new Error(`${REDIS_SERVER} not found: install the Debian package redis-server (make tools does) to run the Redis store tests`)
        : error);
    });
    child.once('exit', (code, signal) => fail(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`)));
    const read = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (!READY_LINE.test(output)) return;
      clearTimeout(guard);
      // From here on the server's log is drained and dropped.
      child.stdout?.off('data', read);
      child.stderr?.off('data', read);
      child.stdout?.resume();
      child.stderr?.resume();
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      child.on('error', () => undefined);
      resolve(child);
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
  });
}
