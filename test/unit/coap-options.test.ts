import t from 'tap';
import {
  Option, blockSizeBytes, judgeOption, optionNumber, readBlock, readUint, writeBlock, writeUint,
} from '../../gateway/src/coap/options.ts';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';

// RFC 7252 section 3.2 (uint option values), section 5.4 (critical/elective, length, repetition),
// RFC 7959 section 2.2 (the Block option's NUM/M/SZX). The expected bytes are written out here,
// not computed with the functions under test.

t.test('writeUint: the shortest big-endian encoding, 0 as the empty value', async (t) => {
  const cases: [number, string][] = [
    [0, ''],
    [1, '01'],
    [255, 'ff'],
    [256, '0100'],
    [65_535, 'ffff'],
    [65_536, '010000'],
    [0xff_ffff, 'ffffff'],
    [0x100_0000, '01000000'],
    [2 ** 32 - 1, 'ffffffff'],
  ];
  for (const [value, hex] of cases) t.equal(writeUint(value).toString('hex'), hex, `${value} -> '${hex}'`);
});

t.test('readUint: big-endian, empty is 0, leading zeros allowed (section 3.2)', async (t) => {
  t.equal(readUint(Buffer.alloc(0)), 0);
  t.equal(readUint(Buffer.from('01', 'hex')), 1);
  t.equal(readUint(Buffer.from('0100', 'hex')), 256);
  t.equal(readUint(Buffer.from('000001', 'hex')), 1, 'leading zeros');
  t.equal(readUint(Buffer.from('ffffffff', 'hex')), 2 ** 32 - 1, 'no sign: the largest 4-byte value stays positive');
  for (const value of [0, 1, 255, 256, 65_535, 65_536, 2 ** 24, 2 ** 32 - 1]) {
    t.equal(readUint(writeUint(value)), value, `round trip of ${value}`);
  }
});

t.test('writeBlock: NUM << 4 | M << 3 | SZX, known vectors from RFC 7959 section 2.2', async (t) => {
  t.equal(writeBlock({ num: 0, more: false, szx: 0 }).toString('hex'), '', 'block 0, no more, 16 bytes: the empty value');
  t.equal(writeBlock({ num: 0, more: true, szx: 6 }).toString('hex'), '0e');
  t.equal(writeBlock({ num: 1, more: true, szx: 6 }).toString('hex'), '1e');
  t.equal(writeBlock({ num: 15, more: false, szx: 2 }).toString('hex'), 'f2');
  t.equal(writeBlock({ num: 16, more: false, szx: 2 }).toString('hex'), '0102', 'two bytes from block 16');
  t.equal(writeBlock({ num: 2 ** 20 - 1, more: true, szx: 7 }).toString('hex'), 'ffffff', 'the largest block fits 3 bytes');
});

t.test('readBlock/writeBlock round trip for NUM up to 2^20-1, both M flags, SZX 0..7', async (t) => {
  const nums = [0, 1, 2, 15, 16, 255, 256, 4095, 4096, 65_535, 65_536, 2 ** 20 - 2, 2 ** 20 - 1];
  let checked = 0;
  let wrong = '';
  for (const num of nums) {
    for (const more of [false, true]) {
      for (let szx = 0; szx <= 7; szx += 1) {
        const value = writeBlock({ num, more, szx });
        const back = readBlock(value);
        checked += 1;
        if (value.length > 3 || back.num !== num || back.more !== more || back.szx !== szx) {
          wrong += `${num}/${more}/${szx} -> ${value.toString('hex')} -> ${JSON.stringify(back)}; `;
        }
      }
    }
  }
  t.equal(checked, nums.length * 2 * 8);
  t.equal(wrong, '', 'every block option survives the round trip in at most 3 bytes');
});

t.test('readBlock: the empty value is block 0, no more, SZX 0; leading zeros allowed', async (t) => {
  t.same(readBlock(Buffer.alloc(0)), { num: 0, more: false, szx: 0 });
  t.same(readBlock(Buffer.from('001e', 'hex')), { num: 1, more: true, szx: 6 });
  t.same(readBlock(Buffer.from('0a', 'hex')), { num: 0, more: true, szx: 2 });
});

t.test('blockSizeBytes is 2^(SZX+4)', async (t) => {
  t.same([0, 1, 2, 3, 4, 5, 6, 7].map(blockSizeBytes), [16, 32, 64, 128, 256, 512, 1024, 2048]);
});

t.test('optionNumber: coap-packet names, numbers left as text, and numbers', async (t) => {
  t.equal(optionNumber('Uri-Path'), 11);
  t.equal(optionNumber('If-Match'), 1);
  t.equal(optionNumber('OSCORE'), 9);
  t.equal(optionNumber('Q-Block2'), 31);
  t.equal(optionNumber('No-Response'), 258);
  t.equal(optionNumber('OCF-Content-Format-Version'), 2053);
  t.equal(optionNumber('65003'), 65003, 'the Access-Token, which coap-packet does not name');
  t.equal(optionNumber('292'), 292);
  t.equal(optionNumber(60), 60);
  t.equal(Option.accessToken, ACCESS_TOKEN_OPTION);
});

t.test('judgeOption: every critical option outside the registry is bad, whatever a library calls it (4.02)', async (t) => {
  // OSCORE (9) is in the registry: the OSCORE layer judges its value (oscore-layer.test.ts).
  for (const number of [1, 5, 19, 31, 2049, 2053, 65001]) {
    t.equal(judgeOption(number, 0, 0), 'bad-critical', `option ${number}`);
  }
});

t.test('judgeOption: elective options outside the registry are ignored', async (t) => {
  for (const number of [2, 16, 258, 2048, 65000]) t.equal(judgeOption(number, 1, 0), 'ignore', `option ${number}`);
});

t.test('judgeOption: Proxy-Uri and Proxy-Scheme are proxying (5.05, section 5.7.2), not 4.02', async (t) => {
  t.equal(judgeOption(Option.proxyUri, 12, 0), 'proxy');
  t.equal(judgeOption(Option.proxyScheme, 4, 0), 'proxy');
});

t.test('judgeOption: implemented options within their lengths are used', async (t) => {
  t.equal(judgeOption(Option.oscore, 0, 0), 'use', 'OSCORE, empty: for the OSCORE layer to judge');
  t.equal(judgeOption(Option.oscore, 256, 0), 'bad-critical', 'OSCORE of 256 bytes: 4.02');
  const cases: [string, number, number][] = [
    ['Uri-Host', 3, 1], ['ETag', 4, 8], ['Observe', 6, 3], ['Uri-Port', 7, 2], ['Uri-Path', 11, 0], ['Uri-Path', 11, 255],
    ['Content-Format', 12, 2], ['Uri-Query', 15, 255], ['Accept', 17, 0], ['Block2', 23, 3], ['Block1', 27, 3],
    ['Size2', 28, 4], ['Size1', 60, 4], ['Request-Tag', 292, 8], ['Access-Token', ACCESS_TOKEN_OPTION, 2048],
  ];
  for (const [name, number, length] of cases) t.equal(judgeOption(number, length, 0), 'use', `${name} with ${length} bytes`);
});

t.test('judgeOption: a critical option with a length out of range is bad (section 5.4.3)', async (t) => {
  const cases: [string, number, number][] = [
    ['Uri-Host', 3, 0], ['Uri-Host', 3, 256], ['Uri-Port', 7, 3], ['Uri-Path', 11, 256], ['Uri-Query', 15, 256],
    ['Accept', 17, 3], ['Block2', 23, 4], ['Block1', 27, 4], ['Access-Token', ACCESS_TOKEN_OPTION, 2049],
  ];
  for (const [name, number, length] of cases) t.equal(judgeOption(number, length, 0), 'bad-critical', `${name} with ${length} bytes`);
});

t.test('judgeOption: an elective option with a length out of range is ignored (section 5.4.3)', async (t) => {
  const cases: [string, number, number][] = [
    ['ETag', 4, 0], ['ETag', 4, 9], ['Observe', 6, 4], ['Content-Format', 12, 3], ['Size2', 28, 5], ['Size1', 60, 5],
    ['Request-Tag', 292, 9],
  ];
  for (const [name, number, length] of cases) t.equal(judgeOption(number, length, 0), 'ignore', `${name} with ${length} bytes`);
});

t.test('judgeOption: a repeated non-repeatable option is treated as unrecognized (section 5.4.5)', async (t) => {
  for (const [name, number] of [['Uri-Host', 3], ['Uri-Port', 7], ['Accept', 17], ['Block2', 23], ['Block1', 27], ['Access-Token', ACCESS_TOKEN_OPTION]] as const) {
    t.equal(judgeOption(number, 1, 0), 'use', `the first ${name}`);
    t.equal(judgeOption(number, 1, 1), 'bad-critical', `a second ${name} (critical)`);
  }
  for (const [name, number] of [['Observe', 6], ['Content-Format', 12], ['Size2', 28], ['Size1', 60]] as const) {
    t.equal(judgeOption(number, 1, 1), 'ignore', `a second ${name} (elective)`);
  }
  for (const [name, number] of [['ETag', 4], ['Uri-Path', 11], ['Uri-Query', 15], ['Request-Tag', 292]] as const) {
    t.equal(judgeOption(number, 1, 5), 'use', `a sixth ${name} (repeatable)`);
  }
});
