/** How many characters of an attacker-chosen string a log line keeps, unless the caller says otherwise. */
export const LOG_TEXT_CHARS = 64;

/**
 * An attacker-chosen value (a path, a query, a kid, a reason that quotes the input) as it may
 * appear in a log line: at most `max` characters, then how long it really was, so one datagram
 * can never make a long line. undefined and null give undefined, which leaves the field out.
 * Cutting bounds a line; it does not make token material safe to log: never pass a token.
 */
export function cut(text: unknown, max: number = LOG_TEXT_CHARS): string | undefined {
  if (!Number.isInteger(max) || max < 1) throw new TypeError(`cut: max must be a positive whole number, got ${max}`);
  if (text === undefined || text === null) return undefined;
  const whole = typeof text === 'string' ? text : String(text);
  if (whole.length <= max) return whole;
  // Never end on half a surrogate pair: the line would carry a lone surrogate.
  const end = isHighSurrogate(whole.charCodeAt(max - 1)) ? max - 1 : max;
  return `${whole.slice(0, end)}...(${whole.length} chars)`;
}

const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff;

/**
 * An attacker-chosen value quoted inside a message (`alg "none" is not allowed`): at most `max`
 * printable ASCII characters in quotes (anything else becomes '?'), then how long it really was;
 * a value that is not a string is named by its type, never printed (a header may hold any JSON).
 */
export function quoted(value: unknown, max: number = LOG_TEXT_CHARS): string {
  if (typeof value !== 'string') return `(${value === null ? 'null' : typeof value})`;
  const text = `"${value.slice(0, max).replace(/[^\x20-\x7e]/g, '?')}"`;
  return value.length > max ? `${text}... (${value.length} chars)` : text;
}
