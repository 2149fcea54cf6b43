import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';

const run = promisify(execFile);
export const GATEWAY_BIN = fileURLToPath(new URL('../../gateway/bin/gateway.js', import.meta.url));

/** Runs one `gateway ...` CLI command, as an operator would, and returns its stdout. */
export async function gatewayCli(args: readonly string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [GATEWAY_BIN, ...args], { encoding: 'utf8' });
  return stdout;
}

export interface RunningGateway {
  port: number;
  process: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Starts `gateway serve` as its own process, writes its JSON log to `logFile`, and resolves with
 * the CoAP port once its "gateway listening" line appears.
 */
export async function spawnGateway(args: readonly string[], logFile: string): Promise<RunningGateway> {
  const child = spawn(process.execPath, [GATEWAY_BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  child.stderr.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      if (!line.includes('"gateway listening"')) return;
      const coap = (JSON.parse(line) as { coap: string }).coap;
      resolve(Number(coap.slice(coap.lastIndexOf(':') + 1)));
    });
    void exited.then((code) => reject(new Error(`gateway exited with code ${code} before listening; see ${logFile}`)));
  });
  return {
    port,
    process: child,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      log.end();
      return code;
    },
  };
}
