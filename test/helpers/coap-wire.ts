import type { ParsedPacket } from 'coap-packet';
import type { Harness } from './harness.ts';
import { parsePrometheusText, sampleSum, sampleValue } from './admin-prometheus.ts';

// Option values written and read by hand (RFC 7252 section 3.2, RFC 7959 section 2.2), so a test
// checks the gateway's bytes against the RFC rather than against the gateway's own encoder.

/** An unsigned integer option value: big-endian, shortest form, 0 is empty. */
export function uintValue(value: number): Buffer {
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
}

/** Block1/Block2: NUM, M, SZX (block size 2^(SZX+4)). */
export function blockValue(num: number, more: boolean, szx: number): Buffer {
  return uintValue(num * 16 + (more ? 8 : 0) + szx);
}

export interface Block {
  num: number;
  more: boolean;
  szx: number;
}

/** Every value of an option in a parsed datagram, by coap-packet's name ('ETag') or number ('292'). */
export function optionValues(p: ParsedPacket, name: string): Buffer[] {
  return p.options.filter((o) => o.name === name).map((o) => o.value);
}

export function readUintOption(p: ParsedPacket, name: string): number | undefined {
  const [value] = optionValues(p, name);
  if (value === undefined) return undefined;
  let n = 0;
  for (const byte of value) n = n * 256 + byte;
  return n;
}

export function readBlockOption(p: ParsedPacket, name: 'Block1' | 'Block2'): Block | undefined {
  const n = readUintOption(p, name);
  return n === undefined ? undefined : { num: Math.floor(n / 16), more: (n & 8) !== 0, szx: n & 7 };
}

/** A metric of an in-process gateway, read from its registry as Prometheus would (0 when absent). */
export async function metricValue(h: Harness, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleValue(parsePrometheusText(await h.gateway.metrics.text()), name, labels) ?? 0;
}

/** The sum over every label set of a metric of an in-process gateway. */
export async function metricSum(h: Harness, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleSum(parsePrometheusText(await h.gateway.metrics.text()), name, labels);
}
