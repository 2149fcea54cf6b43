import { RequestError } from '../errors.ts';
import type { RequestHandler } from '../messages.ts';
import { Block1Assembler } from './block1-assembler.ts';
import { blockwiseAnswer, receiveBlock1, storedBlock, type BlockWiseParts } from './block-wise.ts';
import { answerLog, type Answer, type Layer, type RenderError } from './layer.ts';
import { RepresentationStore } from './representation-store.ts';

/** Uploads and stored answers under way at once, whatever their bytes. */
const MAX_ENTRIES = 10_000;

export interface BlockWiseLayerOptions {
  /** The request layer's admission of a first block: every check that needs no body. */
  admit: RequestHandler['admit'];
  render: RenderError;
  nowMs: () => number;
  /** Bytes of Block1 uploads buffered at once, over all devices (RFC 7959 section 2.5 leaves the bound to the server). */
  blockBufferBytes: number;
  /** How long an unfinished upload or a stored answer is kept. */
  blockLifetimeSec: number;
  /** Bytes of answers kept to serve their later Block2 blocks. */
  representationBytes: number;
  onEvicted?: (table: 'uploads' | 'representations') => void;
  onUploadBytes?: (bytes: number) => void;
}

export interface BlockWiseLayer extends Layer {
  uploadBytes(): number;
  clear(): void;
}

/**
 * RFC 7959 block-wise transfer, so that the layers above see whole requests and whole answers.
 * Going up: Block1 blocks are put together (block 0 admitted first) and later Block2 blocks are
 * served from the stored answer; coming down: an answer larger than a block is stored (for an
 * authenticated request) and sent block by block. Its state is keyed by endpoint and request
 * (Request-Tag included, RFC 9175 section 3.4), never by CoAP token.
 */
export function createBlockWiseLayer(options: BlockWiseLayerOptions): BlockWiseLayer {
  const { render, nowMs, onEvicted } = options;
  const lifetimeMs = options.blockLifetimeSec * 1000;
  const uploads = new Block1Assembler({
    maxBytes: options.blockBufferBytes, maxEntries: MAX_ENTRIES, lifetimeMs, nowMs,
    onEvict: () => onEvicted?.('uploads'), onBytesChanged: options.onUploadBytes,
  });
  const representations = new RepresentationStore({
    maxBytes: options.representationBytes, maxEntries: MAX_ENTRIES, lifetimeMs, nowMs,
    onEvict: () => onEvicted?.('representations'),
  });
  const parts: BlockWiseParts = { admit: options.admit, uploads, representations };

  return {
    async handle(inbound, next): Promise<Answer> {
      const { exchange, request, options: blockOptions } = inbound;
      const blockKey = () => `${exchange.endpointKey} ${blockOptions.blockKey}`;
      const served = storedBlock(parts, request, blockOptions, blockKey);
      if (served !== undefined) {
        // Only answers to authenticated requests are stored, and served only for the same
        // Access-Token. A stored login answer has none: its later blocks go to proven addresses only.
        const { learned } = served.stored;
        const principal = request.accessToken !== undefined ? learned.principal : undefined;
        return { reply: served.reply, principal, log: answerLog({ ...learned, principal }) };
      }
      // RFC 7959 section 2.4: a later block of an answer that is gone; fetching it again is only
      // safe for GET and FETCH, which do not change the backend.
      const block2Num = blockOptions.block2?.num ?? 0;
      if (block2Num > 0 && blockOptions.block1 === undefined && request.method !== 'GET' && request.method !== 'FETCH') {
        throw new RequestError('GW_ERR_REQUEST_INCOMPLETE', `Block2 ${block2Num} of a ${request.method} answer no longer kept`);
      }
      let whole = request;
      let block1;
      if (blockOptions.block1 !== undefined) {
        const outcome = await receiveBlock1(parts, request, blockOptions, inbound.source, blockKey);
        if (outcome.kind === 'refused') return render(outcome.error, exchange, outcome.learned);
        if (outcome.kind === 'continue') {
          const { learned } = outcome;
          return { reply: { response: { code: '2.31' }, block1: outcome.block1 }, principal: learned.principal, log: answerLog(learned) };
        }
        ({ request: whole, block1 } = outcome);
      }
      const answer = await next(whole === request ? inbound : { ...inbound, request: whole });
      // Rendered errors are small and carry no block options.
      if (answer.error !== undefined) return answer;
      const store = answer.principal !== undefined ? { key: blockKey(), learned: { principal: answer.principal, route: answer.log.route } } : undefined;
      const reply = blockwiseAnswer(parts, whole, blockOptions, store, answer.reply.response);
      if (block1 !== undefined) reply.block1 = block1;
      return { ...answer, reply };
    },
    uploadBytes: () => uploads.bytes,
    clear() {
      uploads.clear();
      representations.clear();
    },
  };
}
