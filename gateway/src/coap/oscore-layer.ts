import type { ParsedPacket } from 'coap-packet';
import { ProtectionError } from '../errors.ts';
import { cut } from '../log/index.ts';
import type { Principal } from '../messages.ts';
import {
  OscoreError, protectResponse, readOscoreOption, unprotectRequest,
  type CoapMessage, type OscoreOption, type RequestBinding, type SecurityContext,
} from '../wire/oscore/index.ts';
import { createAddressValidator, type AddressValidator } from './address-validation.ts';
import { MAX_MESSAGE_BYTES, replyOptions, type Reply } from './encode-reply.ts';
import type { Answer, Inbound, LaterAnswer, Layer, RenderError } from './layer.ts';
import { Option } from './options.ts';
import { readRequest } from './read-request.ts';

/** A device's security context as the layer uses it: derived once, held by whoever resolves kids. */
export interface OscoreDevice {
  readonly deviceId: string;
  /** Names this context (new with every rotation): its replay window and the gateway's sequence numbers. */
  readonly generation: string;
  /** What a request without an Access-Token may do: the device record's scopes. */
  readonly scopes: ReadonlySet<string>;
  readonly context: SecurityContext;
}

/** What the layer needs of the store's OSCORE windows (store/ports.ts `OscoreWindows`). */
export interface OscoreWindowsPort {
  accept(generation: string, sequenceNumber: number): Promise<'fresh' | 'replay' | 'unknown'>;
  establish(generation: string, sequenceNumber?: number): Promise<void>;
  reserveSequence(generation: string, count: number): Promise<number>;
}

/** How an OSCORE request ended in this layer; the label of coap_gateway_oscore_requests_total. */
export type OscoreOutcome = 'ok' | 'bad_option' | 'unknown_context' | 'decrypt_failed' | 'replay' | 'echo_challenge' | 'bad_inner';

export interface OscoreLayerOptions {
  /** The context whose Recipient ID is `kid` (the device's Sender ID), if a device that may use it has one. */
  contextOf(kid: Buffer): Promise<OscoreDevice | undefined>;
  windows: OscoreWindowsPort;
  render: RenderError;
  nowMs: () => number;
  /** Contexts whose block of the gateway's own sequence numbers is held at once. */
  maxSequenceBlocks: number;
  /** The gateway's own sequence numbers reserved from the store at once, per context. */
  sequenceBlockSize?: number;
  onOutcome?(outcome: OscoreOutcome): void;
  /** A replay window was re-established with Echo (RFC 8613 Appendix B.1.2). */
  onEchoRecovered?(): void;
  /** A context's held block of sequence numbers was dropped to make room (its rest goes unused). */
  onSequenceBlockEvicted?(): void;
  validator?: AddressValidator;
}

const EMPTY = Buffer.alloc(0);
/**
 * The outer message around a protected answer: header 4, token up to 8, OSCORE option up to 7
 * (a 5-byte Partial IV), payload marker 1, AES-CCM tag 8. An inner answer larger than what is
 * left would not fit one message.
 */
const OUTER_OVERHEAD_BYTES = 4 + 8 + 7 + 1 + 8;

/**
 * RFC 8613 on the device leg, between the messaging layer (deduplication and retransmission stay
 * on the outer message) and the layers above. Going up, a request with an OSCORE option is
 * verified under the context its kid names, checked against the replay window and handed up as
 * its inner request, proved to be the context's device. Coming down, every answer to it (the
 * ones the layers above make themselves included: Echo challenges, rendered errors, 2.31, 5.03
 * while draining) is protected with that context; one the messaging layer stores for
 * retransmissions is sent again as it is, never encrypted twice. What cannot be verified (a
 * malformed option, no context, a failed decryption, a replay) is answered in clear, as section
 * 8.2 says, and nothing of it goes up. Requests without the option pass through.
 */
export function createOscoreLayer(options: OscoreLayerOptions): Layer {
  const { contextOf, windows, render } = options;
  const outcome = options.onOutcome ?? (() => undefined);
  const validator = options.validator ?? createAddressValidator(options.nowMs);
  const sequences = createSequenceBlocks(windows, options.maxSequenceBlocks, options.sequenceBlockSize ?? 64,
    () => options.onSequenceBlockEvicted?.());
  // Echo values for window recovery are bound to the context's generation, not to an address:
  // OSCORE survives a NAT rebinding, so its recovery must too.
  const echoSubject = (device: OscoreDevice) => `oscore ${device.generation}`;

  /** An answer in clear: section 8.2 step 2, 3 or 6 failed, so there is no verified request to bind one to. */
  const refuse = (inbound: Inbound, result: OscoreOutcome, code: ConstructorParameters<typeof ProtectionError>[0],
    reason: string, deviceId?: string): Answer => {
    outcome(result);
    return render(new ProtectionError(code, reason), inbound.exchange, { deviceId });
  };

  /** Protects one answer for the request `binding`; with `own`, under a sequence number of the gateway's (a new nonce). */
  const protect = (device: OscoreDevice, binding: RequestBinding, reply: Reply, own?: number): Reply => {
    let inner = innerMessage(reply);
    if (plaintextBytes(inner) > MAX_MESSAGE_BYTES - OUTER_OVERHEAD_BYTES) inner = { code: '5.02', options: [], payload: EMPTY };
    const sealed = protectResponse(device.context, binding, inner, own === undefined ? undefined : { sequenceNumber: own });
    const oscore = sealed.outerOptions.find((o) => o.number === Option.oscore)?.value ?? EMPTY;
    return { response: { code: sealed.outerCode, payload: sealed.payload }, oscore };
  };

  /** Further answers (notifications) each under a sequence number of the gateway's own: a request's nonce serves one answer only. */
  async function* protectLater(device: OscoreDevice, binding: RequestBinding, later: AsyncIterable<LaterAnswer>): AsyncGenerator<LaterAnswer> {
    for await (const answer of later) {
      yield { confirmable: answer.confirmable, reply: protect(device, binding, answer.reply, await sequences.next(device.generation)) };
    }
  }

  return {
    async handle(inbound, next) {
      const value = inbound.options.oscore;
      if (value === undefined) return next(inbound);
      let option: OscoreOption;
      try {
        option = readOscoreOption(value);
      } catch {
        return refuse(inbound, 'bad_option', 'GW_ERR_OSCORE_BAD_OPTION', 'the OSCORE option does not decode');
      }
      // Section 5: a request carries its kid and its Partial IV.
      if (option.kid === undefined || option.partialIv === undefined) {
        return refuse(inbound, 'bad_option', 'GW_ERR_OSCORE_BAD_OPTION', 'an OSCORE request without kid or Partial IV');
      }
      const kidHex = option.kid.toString('hex');
      const device = await contextOf(option.kid);
      if (device === undefined) return refuse(inbound, 'unknown_context', 'GW_ERR_OSCORE_UNKNOWN_CONTEXT', `no security context for kid ${cut(kidHex, 32)}`);
      const { deviceId } = device;

      let message: CoapMessage | undefined;
      let binding: RequestBinding;
      let sequenceNumber: number;
      try {
        ({ message, request: binding, sequenceNumber } = unprotectRequest(device.context, option, inbound.request.payload));
      } catch (err) {
        if (!(err instanceof OscoreError) || err.code !== 'malformed_plaintext' || err.request === undefined || err.sequenceNumber === undefined) {
          if (err instanceof OscoreError && err.code === 'malformed_option') {
            return refuse(inbound, 'bad_option', 'GW_ERR_OSCORE_BAD_OPTION', 'an OSCORE request without payload', deviceId);
          }
          return refuse(inbound, 'decrypt_failed', 'GW_ERR_OSCORE_DECRYPT_FAILED', `does not decrypt under the context of kid ${cut(kidHex, 32)}`, deviceId);
        }
        // Authentic but no request inside: answered, protected, once its number is checked and spent.
        ({ request: binding, sequenceNumber } = err);
      }

      // Section 7.4: the check and the update are one step in the store (shared by a fleet).
      const verdict = await windows.accept(device.generation, sequenceNumber);
      if (verdict === 'replay') return refuse(inbound, 'replay', 'GW_ERR_OSCORE_REPLAY', `sequence number ${sequenceNumber} seen before`, deviceId);
      const principal: Principal = { deviceId, scopes: device.scopes, by: 'oscore', protection: 'oscore' };
      // An answer under the request's nonce only once the request is known to be fresh; else under one of ours.
      let fresh = verdict === 'fresh';
      const own = async () => (fresh ? undefined : sequences.next(device.generation));
      const protectedError = async (err: ProtectionError | unknown, result: OscoreOutcome): Promise<Answer> => {
        outcome(result);
        const rendered = render(err, inbound.exchange, { principal, deviceId });
        return { ...rendered, reply: protect(device, binding, rendered.reply, await own()) };
      };
      if (message === undefined) return protectedError(new ProtectionError('GW_ERR_OSCORE_BAD_INNER', 'the decrypted plaintext is no request'), 'bad_inner');

      let read;
      try {
        read = readRequest(innerPacket(message), inbound.request.peer, inbound.exchange.requestId);
        if (read.options.oscore !== undefined) throw new ProtectionError('GW_ERR_OSCORE_BAD_INNER', 'an OSCORE option inside the protection');
      } catch (err) {
        return protectedError(err, 'bad_inner');
      }

      let { options: innerOptions } = read;
      if (verdict === 'unknown') {
        // Appendix B.1.2: this gateway holds no window for the context (a restart, a new context
        // on the file store, an evicted one): the request may be a replay, so it is not acted on
        // until the device repeats it with an Echo value of ours, inside the protection.
        if (!validator.verify(echoSubject(device), innerOptions.echo)) {
          const challenge = new ProtectionError('GW_ERR_OSCORE_ECHO_REQUIRED', 'no replay window held for this context: Echo first');
          outcome('echo_challenge');
          const rendered = render(challenge, inbound.exchange, { principal, deviceId });
          const reply: Reply = { response: { code: '4.01' }, echo: validator.challenge(echoSubject(device)) };
          return { ...rendered, reply: protect(device, binding, reply, await own()) };
        }
        await windows.establish(device.generation, sequenceNumber);
        fresh = true;
        options.onEchoRecovered?.();
        // The Echo value answered this layer's question: the layers above must not take it for an address proof of theirs.
        innerOptions = { ...innerOptions, echo: undefined };
      }

      outcome('ok');
      const answer = await next({ exchange: inbound.exchange, request: read.request, options: innerOptions, source: { ...inbound.source, principal } });
      const ownNumber = await own();
      return {
        ...answer,
        log: { ...answer.log, method: read.request.method, path: read.request.path, protection: 'oscore' },
        reply: protect(device, binding, answer.reply, ownNumber),
        principal: answer.principal ?? principal,
        ...(answer.later === undefined ? {} : { later: protectLater(device, binding, answer.later) }),
      };
    },
  };
}

/** The inner message of an answer: its code, the options the transport would write, its payload. */
function innerMessage(reply: Reply): CoapMessage {
  return { code: reply.response.code, options: replyOptions(reply), payload: reply.response.payload ?? EMPTY };
}

/** An upper bound of the encoded plaintext: code, each option's header (at most 5 bytes) and value, marker and payload. */
function plaintextBytes(message: CoapMessage): number {
  let bytes = 1 + (message.payload.length > 0 ? 1 + message.payload.length : 0);
  for (const option of message.options) bytes += 5 + option.value.length;
  return bytes;
}

/** The decrypted request in the shape the transport's option reader takes (coap-packet's parse result). */
function innerPacket(message: CoapMessage): ParsedPacket {
  return {
    code: message.code, messageId: 0, token: EMPTY, confirmable: false, reset: false, ack: false,
    options: message.options.map((o) => ({ name: String(o.number) as ParsedPacket['options'][number]['name'], value: o.value })),
    payload: message.payload,
  };
}

interface SequenceBlocks {
  /** The gateway's next own sequence number for the context, from a block reserved in the store. */
  next(generation: string): Promise<number>;
}

/**
 * RFC 8613 Appendix B.1.1: the gateway's own sequence numbers come from blocks the store has
 * written before handing them out (an atomic increment shared by the fleet), so neither a
 * restart nor a second gateway ever sends twice under one nonce. At most `maxBlocks` contexts
 * hold a block; the least recently used one's rest is dropped (numbers go unused, never reused).
 */
function createSequenceBlocks(windows: OscoreWindowsPort, maxBlocks: number, blockSize: number, onEvicted: () => void): SequenceBlocks {
  const blocks = new Map<string, { next: number; end: number }>();
  const reserving = new Map<string, Promise<number>>();
  return {
    async next(generation) {
      const held = blocks.get(generation);
      if (held !== undefined && held.next < held.end) {
        blocks.delete(generation);
        blocks.set(generation, held);
        return held.next++;
      }
      // One reservation at a time per context: concurrent answers wait for the same block.
      let pending = reserving.get(generation);
      if (pending === undefined) {
        pending = windows.reserveSequence(generation, blockSize).finally(() => reserving.delete(generation));
        reserving.set(generation, pending);
        const first = await pending;
        blocks.delete(generation);
        if (blocks.size >= maxBlocks) {
          blocks.delete(blocks.keys().next().value!);
          onEvicted();
        }
        blocks.set(generation, { next: first, end: first + blockSize });
      } else {
        await pending;
      }
      return this.next(generation);
    },
  };
}
