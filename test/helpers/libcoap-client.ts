import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';

// libcoap's C client (Debian package libcoap3-bin) as an independent device: what node-coap might
// get wrong in the same way on both ends shows up here.

export const LIBCOAP_CLIENT = 'coap-client-notls';
const run = promisify(execFile);
const installed = run('/bin/sh', ['-c', `command -v ${LIBCOAP_CLIENT}`]).then(() => true, () => false);

/** One PDU as libcoap prints it at -v 7 (every PDU) or -v 6 (the first request and the last response). */
export interface LibcoapPdu {
  type: 'CON' | 'NON' | 'ACK' | 'RST';
  /** 'GET', 'POST'... for requests, 'c.dd' for responses. */
  code: string;
  messageId: number;
  /** The CoAP token, hex. */
  token: string;
  /** libcoap's rendering of the options, e.g. `Content-Format:application/cbor, Block1:5/_/512`. */
  options: string;
}

export interface LibcoapRun {
  /** The last response (code x.yy other than 0.00). */
  answer: LibcoapPdu;
  pdus: LibcoapPdu[];
  /** What `-o` wrote: the (reassembled) payload of a 2.xx answer; libcoap prints error payloads to stderr instead. */
  payload: Buffer;
  stdout: string;
  stderr: string;
}

/** Fails (never skips) when the C client is missing: CI installs it with `make tools`. */
export async function requireLibcoap(t: Test): Promise<boolean> {
  if (await installed) return true;
  t.fail(`${LIBCOAP_CLIENT} is not installed: install the Debian package libcoap3-bin (apt-get install -y libcoap3-bin, or \`make tools\`)`);
  return false;
}

const PDU_LINE = /^v:1 t:(CON|NON|ACK|RST) c:(\S+) i:([0-9a-f]{4}) \{([0-9a-f]*)\} \[([^\]]*)\]/gm;

/**
 * Runs coap-client-notls once against `uri` with `args`, with `-v 7` so every PDU it sends and
 * receives is printed (the client exits 0 for 4.xx answers too, so the code is read from there).
 */
export async function libcoap(t: Test, uri: string, args: readonly string[], timeoutSec = 10): Promise<LibcoapRun> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-libcoap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.bin');
  const { stdout, stderr } = await run(LIBCOAP_CLIENT, ['-v', '7', '-B', String(timeoutSec), '-o', out, ...args, uri],
    { timeout: (timeoutSec + 5) * 1000, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const pdus: LibcoapPdu[] = [...stdout.matchAll(PDU_LINE)].map((m) => ({
    type: m[1] as LibcoapPdu['type'], code: m[2]!, messageId: parseInt(m[3]!, 16), token: m[4]!, options: m[5]!,
  }));
  const answer = pdus.filter((p) => /^\d\.\d\d$/.test(p.code) && p.code !== '0.00').at(-1);
  if (answer === undefined) throw new Error(`no CoAP response in ${LIBCOAP_CLIENT} output:\n${stdout.slice(-4000)}\n${stderr}`);
  const payload = await readFile(out).catch(() => Buffer.alloc(0));
  return { answer, pdus, payload, stdout, stderr };
}

/** The Block1 or Block2 option of a PDU as libcoap prints it (`Block1:39/_/512`): number, more, size. */
export function libcoapBlock(pdu: LibcoapPdu, which: 'Block1' | 'Block2'): { num: number; more: boolean; size: number } | undefined {
  const m = new RegExp(`${which}:(\\d+)/([M_])/(\\d+)`).exec(pdu.options);
  return m === null ? undefined : { num: Number(m[1]), more: m[2] === 'M', size: Number(m[3]) };
}

/** The value of a numeric option as libcoap prints it (`Size1:20011`), or undefined. */
export function libcoapUint(pdu: LibcoapPdu, name: string): number | undefined {
  const m = new RegExp(`(?:^|, )${name}:(\\d+)`).exec(pdu.options);
  return m === null ? undefined : Number(m[1]);
}
