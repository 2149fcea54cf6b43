import { AuthError } from '../errors.ts';
import { createAddressValidator, type AddressValidator } from './address-validation.ts';
import { encodeReply, type Reply } from './encode-reply.ts';
import type { Answer, Layer } from './layer.ts';
import { noteOf } from './render-error.ts';

const NO_TOKEN = Buffer.alloc(0);

export interface AddressLayerOptions {
  nowMs: () => number;
  /** An answer was held back for an Echo round trip (metrics). */
  onChallenged?: () => void;
  /** Injectable for tests; by default one with a key of this process. */
  validator?: AddressValidator;
}

/**
 * RFC 7252 section 11.3 and RFC 9175 section 2.4: an answer larger than its request goes only
 * to a device that authenticated or proved its address; the others get 4.01 with an Echo value
 * to repeat, so a forged source address never makes the gateway a reflector. Going up, it tells
 * the layers above whether the request proved its address (`source.addressProved`); coming down,
 * it holds back what an unproved source may not have, also when an answer asks to go only to a
 * proved address whatever its size (a login nonce is state kept for whoever asked).
 */
export function createAddressLayer(options: AddressLayerOptions): Layer {
  const addresses = options.validator ?? createAddressValidator(options.nowMs);
  return {
    async handle(inbound, next) {
      const { peer, budgetBytes } = inbound.exchange;
      const addressProved = addresses.verify(peer.address, inbound.options.echo);
      const answer = await next(addressProved ? { ...inbound, source: { ...inbound.source, addressProved } } : inbound);
      // A device proved below (OSCORE) or by the request itself (a token, a login) may have any answer.
      if (answer.principal !== undefined || inbound.source.principal !== undefined || addressProved) return answer;
      const bytes = sizeOf(answer.reply);
      if (answer.provedAddressOnly !== true && bytes <= budgetBytes) return answer;
      options.onChallenged?.();
      const reason = answer.provedAddressOnly === true ? 'a nonce, to an unverified address' : `${bytes}-byte answer to an unverified address`;
      let reply: Reply = { response: { code: '4.01' }, echo: addresses.challenge(peer.address) };
      // The challenge itself must not outgrow the request: without room for the Echo value, a bare 4.01.
      if (sizeOf(reply) > budgetBytes) reply = { response: reply.response };
      const challenge: Answer = { reply, log: answer.log, error: noteOf(new AuthError('GW_ERR_AUTH_ADDRESS_UNVERIFIED', reason)) };
      return challenge;
    },
  };
}

/**
 * The answer's size less the token it echoes. One that cannot be encoded at all counts as empty:
 * the messaging layer sends a bare 5.02 in its place, which fits any request.
 */
function sizeOf(reply: Reply): number {
  try {
    return encodeReply(reply, 'ack', 0, NO_TOKEN).length;
  } catch {
    return 0;
  }
}
