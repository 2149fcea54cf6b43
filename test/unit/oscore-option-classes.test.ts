import t from 'tap';
import { decryptedOptions, optionClass, splitOptions, withOscoreOption, type CoapOption } from '../../gateway/src/wire/oscore/index.ts';

// Option classes (RFC 8613 section 4.1, Figure 5) as this gateway applies them: Class U outer,
// Observe both, everything else (Block and Size too: inner block-wise) inner.

const opt = (number: number, value: string): CoapOption => ({ number, value: Buffer.from(value) });
const listed = (options: readonly CoapOption[]) => options.map((o) => `${o.number}=${o.value.toString()}`);

t.test('optionClass: Figure 5, with this gateway\'s choices for the options that may be both', async (t) => {
  const expected: [number, string, string][] = [
    [1, 'If-Match', 'inner'], [3, 'Uri-Host', 'outer'], [4, 'ETag', 'inner'], [5, 'If-None-Match', 'inner'],
    [6, 'Observe', 'both'], [7, 'Uri-Port', 'outer'], [8, 'Location-Path', 'inner'], [9, 'OSCORE', 'outer'],
    [11, 'Uri-Path', 'inner'], [12, 'Content-Format', 'inner'], [14, 'Max-Age', 'inner'], [15, 'Uri-Query', 'inner'],
    [16, 'Hop-Limit (RFC 8768: Class U)', 'outer'], [17, 'Accept', 'inner'], [20, 'Location-Query', 'inner'],
    [23, 'Block2 (inner block-wise)', 'inner'], [27, 'Block1 (inner block-wise)', 'inner'], [28, 'Size2', 'inner'],
    [35, 'Proxy-Uri', 'outer'], [39, 'Proxy-Scheme', 'outer'], [60, 'Size1', 'inner'], [252, 'Echo (RFC 9175: Class E)', 'inner'],
    [258, 'No-Response (MUST be inner)', 'inner'], [292, 'Request-Tag (RFC 9175: Class E)', 'inner'],
    [65_003, 'Access-Token', 'inner'], [2, 'an unassigned number (unknown: Class E)', 'inner'], [65_000, 'an experimental one', 'inner'],
  ];
  for (const [number, name, cls] of expected) t.equal(optionClass(number), cls, `${number} ${name}: ${cls}`);
});

t.test('splitOptions: a request\'s options, each side in number order with repeats in order', async (t) => {
  const options = [
    opt(11, 'telemetry'), opt(3, 'gw.example'), opt(15, 'b=2'), opt(11, 'temp'), opt(65_003, 'token'), opt(27, 'B1'),
    opt(252, 'echo'), opt(12, 'CF'), opt(7, 'port'), opt(15, 'a=1'), opt(6, 'OBS'),
  ];
  const { inner, outer } = splitOptions(options, 'request');
  t.same(listed(inner), ['6=OBS', '11=telemetry', '11=temp', '12=CF', '15=b=2', '15=a=1', '27=B1', '252=echo', '65003=token']);
  t.same(listed(outer), ['3=gw.example', '6=OBS', '7=port'], 'Uri-Host, Uri-Port and the outer Observe with the same value');
});

t.test('splitOptions: a response\'s Observe is empty inside and carries the value outside (section 4.1.3.5.2)', async (t) => {
  const { inner, outer } = splitOptions([opt(12, 'CF'), opt(6, 'seq'), opt(14, 'MA')], 'response');
  t.same(listed(inner), ['6=', '12=CF', '14=MA'], 'inner: an empty Observe, Content-Format, Max-Age');
  t.same(listed(outer), ['6=seq'], 'outer: the Observe value, for proxies');
});

t.test('splitOptions: misuse is a TypeError', async (t) => {
  t.throws(() => splitOptions([opt(9, '')], 'request'), TypeError, 'an OSCORE option in the message (nested OSCORE)');
  t.throws(() => splitOptions([{ number: -1, value: Buffer.alloc(0) }], 'request'), TypeError, 'a negative number');
  t.throws(() => splitOptions([{ number: 65_536, value: Buffer.alloc(0) }], 'request'), TypeError, 'a number over 65535');
  t.throws(() => splitOptions([{ number: 11, value: 'text' as unknown as Buffer }], 'request'), TypeError, 'a text value');
});

t.test('decryptedOptions: Class U outer options stand, the rest of the outer ones go, joined in number order', async (t) => {
  const outer = [opt(3, 'host'), opt(6, 'outer-obs'), opt(9, 'oscore'), opt(14, 'outer-max-age'), opt(23, 'outer-block2'), opt(35, 'proxy')];
  const inner = [opt(6, 'inner-obs'), opt(11, 'a'), opt(11, 'b'), opt(14, 'inner-max-age')];
  t.same(listed(decryptedOptions(outer, inner)), ['3=host', '6=inner-obs', '11=a', '11=b', '14=inner-max-age', '35=proxy'],
    'the outer Observe, Max-Age and Block2 are discarded (section 8.2 step 1), OSCORE removed (step 7)');
  const onlyOscore = decryptedOptions([opt(9, 'x')], inner);
  t.same(listed(onlyOscore), listed(inner));
  t.not(onlyOscore, inner, 'a new array: the caller may change it');
});

t.test('withOscoreOption: option 9 goes in number order', async (t) => {
  t.same(listed(withOscoreOption([], Buffer.from('o'))), ['9=o']);
  t.same(listed(withOscoreOption([opt(3, 'h'), opt(7, 'p')], Buffer.from('o'))), ['3=h', '7=p', '9=o']);
  t.same(listed(withOscoreOption([opt(3, 'h'), opt(35, 'u')], Buffer.from('o'))), ['3=h', '9=o', '35=u']);
});
