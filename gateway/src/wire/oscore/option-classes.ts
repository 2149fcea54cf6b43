import type { CoapOption } from './coap-message.ts';
import { OSCORE_OPTION } from './oscore-option.ts';

/**
 * Where an option travels under OSCORE (RFC 8613 section 4.1, Figure 5): 'inner' (Class E:
 * encrypted, for the other endpoint), 'outer' (Class U: visible, for proxies) or 'both' (an
 * inner and an outer instance). There are no Class I options yet (section 4.1.2).
 */
export type OptionClass = 'inner' | 'outer' | 'both';

const OPTION = {
  uriHost: 3,
  observe: 6,
  uriPort: 7,
  hopLimit: 16,
  proxyUri: 35,
  proxyScheme: 39,
} as const;

/**
 * Class U only: Uri-Host, Uri-Port, Proxy-Scheme and Proxy-Uri are for forward proxies
 * (section 4.1.3.2); OSCORE is the option itself (section 4.1.3.7); Hop-Limit is Class U by
 * RFC 8768 section 3, a proxy's loop detection.
 */
const OUTER_ONLY: ReadonlySet<number> = new Set([
  OPTION.uriHost, OPTION.uriPort, OSCORE_OPTION, OPTION.hopLimit, OPTION.proxyUri, OPTION.proxyScheme,
]);

/**
 * Everything else is Class E, unknown options included (section 4.1: "SHALL be processed as
 * Class E"), and with it the options Figure 5 marks both E and U but whose outer instance is
 * for proxies that do things this gateway's devices do not ask of them: Block1, Block2, Size1
 * and Size2 go inner only (inner block-wise, section 4.1.3.4.1: each block verified on its
 * own; outer Block options are a proxy's, section 4.1.3.4.2); Max-Age goes inner (an outer
 * Max-Age 0 is the caller's to add, section 4.1.3.1); No-Response MUST be inner and its outer
 * instance SHOULD NOT be present (section 4.1.3.6). Observe alone is both: the inner one for the
 * endpoint, the outer one so that a proxy forwards notifications (section 4.1.3.5).
 */
export function optionClass(number: number): OptionClass {
  if (OUTER_ONLY.has(number)) return 'outer';
  return number === OPTION.observe ? 'both' : 'inner';
}

const EMPTY = Buffer.alloc(0);

function checkOption(option: CoapOption): void {
  if (!Number.isInteger(option.number) || option.number < 0 || option.number > 65_535 || !Buffer.isBuffer(option.value)) {
    throw new TypeError('an option is { number: 0-65535, value: Buffer }');
  }
}

/** Stable by number: repeated options keep their order (RFC 7252 section 5.4.5). */
function byNumber(options: CoapOption[]): CoapOption[] {
  return options.sort((a, b) => a.number - b.number);
}

/**
 * Splits a message's options into the inner ones (for the plaintext) and the outer ones (for
 * the OSCORE message), each in number order with repeated options in their order. An Observe
 * goes to both: in a request both carry its value (section 4.1.3.5.1); in a response the inner
 * one is empty and the outer one carries the value (section 4.1.3.5.2). An OSCORE option in
 * the message is a TypeError: nested OSCORE is not supported (section 4.1.3.7).
 */
export function splitOptions(options: readonly CoapOption[], kind: 'request' | 'response'): { inner: CoapOption[]; outer: CoapOption[] } {
  const inner: CoapOption[] = [];
  const outer: CoapOption[] = [];
  for (const option of options) {
    checkOption(option);
    if (option.number === OSCORE_OPTION) throw new TypeError('the message to protect already has an OSCORE option: nested OSCORE is not supported');
    switch (optionClass(option.number)) {
      case 'inner':
        inner.push(option);
        break;
      case 'outer':
        outer.push(option);
        break;
      case 'both':
        inner.push(kind === 'response' ? { number: option.number, value: EMPTY } : option);
        outer.push(option);
        break;
    }
  }
  return { inner: byNumber(inner), outer: byNumber(outer) };
}

/**
 * The options of a decrypted message (section 8.2 steps 1 and 7, section 8.4 steps 1 and 6):
 * of the outer options only the Class U ones stand (every option with an inner class is
 * discarded, its outer instance being a proxy's; the OSCORE option is removed), joined with the
 * inner ones in number order.
 */
export function decryptedOptions(outer: readonly CoapOption[], inner: readonly CoapOption[]): CoapOption[] {
  const kept = outer.filter((option) => option.number !== OSCORE_OPTION && optionClass(option.number) === 'outer');
  return kept.length === 0 ? inner.slice() : byNumber([...kept, ...inner]);
}

/** Inserts the OSCORE option into outer options that are in number order. */
export function withOscoreOption(outer: CoapOption[], value: Buffer): CoapOption[] {
  const at = outer.findIndex((option) => option.number > OSCORE_OPTION);
  outer.splice(at === -1 ? outer.length : at, 0, { number: OSCORE_OPTION, value });
  return outer;
}
