import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, cut, LOG_TEXT_CHARS, quoted, REDACT_PATHS } from '../../gateway/src/log/index.ts';

t.test('cut keeps short text, cuts long text to LOG_TEXT_CHARS and says how long it was', async (t) => {
  t.equal(LOG_TEXT_CHARS, 64);
  t.equal(cut(undefined), undefined, 'undefined: the field is left out');
  t.equal(cut(null), undefined, 'null too');
  t.equal(cut(''), '');
  t.equal(cut('/config'), '/config');
  const exact = 'a'.repeat(64);
  t.equal(cut(exact), exact, '64 characters: kept');
  t.equal(cut(`${exact}b`), `${exact}...(65 chars)`, '65: cut, with the length');
  t.equal(cut('x'.repeat(40_300)), `${'x'.repeat(64)}...(40300 chars)`, 'a 40,300-character kid makes a short field');
  t.equal(cut('abcdef', 3), 'abc...(6 chars)', 'a caller may choose the length');
});

t.test('cut takes any value: numbers, buffers and objects as their text', async (t) => {
  t.equal(cut(42), '42');
  t.equal(cut(Buffer.from('hello')), 'hello');
  t.equal(cut({ toString: () => 'y'.repeat(100) }), `${'y'.repeat(64)}...(100 chars)`);
});

t.test('cut never ends on half a surrogate pair', async (t) => {
  const text = `${'a'.repeat(63)}\u{1F600}tail`;
  const result = cut(text)!;
  t.equal(result, `${'a'.repeat(63)}...(${text.length} chars)`, 'the emoji is dropped whole');
  t.notMatch(result, /[\ud800-\udbff](?![\udc00-\udfff])/, 'no lone high surrogate');
});

t.test('cut refuses a length that is not a positive whole number (caller misuse: TypeError)', async (t) => {
  for (const max of [0, -1, 1.5, Number.NaN]) t.throws(() => cut('text', max), TypeError, String(max));
});

t.test('every REDACT_PATHS field is censored in a log line', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger('info', sink);
  const record: Record<string, unknown> = {};
  for (const path of REDACT_PATHS) {
    const keys = path.split('.');
    let node = record;
    for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[keys.at(-1)!] = `SECRET-VALUE-${path}`;
  }
  logger.info(record, 'redaction check');
  const line = lines.join('');
  t.notMatch(line, /SECRET-VALUE/, 'no value of a redacted field');
  t.equal(line.split('[redacted]').length - 1, REDACT_PATHS.length, 'each one censored');
  for (const name of ['token', 'accessToken', 'refreshToken', 'assertion', 'secret', 'authorization', 'privateKey', 'd']) {
    t.ok(REDACT_PATHS.includes(name), `${name} is covered`);
  }
});

t.test('quoted: printable ASCII in quotes, cut like cut; other values by their type only', async (t) => {
  t.equal(quoted('none'), '"none"');
  t.equal(quoted('a\nb\u0000c\u00e9'), '"a?b?c?"', 'control and non-ASCII characters become ?');
  t.equal(quoted('k'.repeat(100)), `"${'k'.repeat(64)}"... (100 chars)`, 'long text cut, with its length');
  t.equal(quoted(42), '(number)');
  t.equal(quoted(null), '(null)');
  t.equal(quoted({ alg: 'x' }), '(object)', 'an object is never printed');
  t.equal(quoted(undefined), '(undefined)');
});
