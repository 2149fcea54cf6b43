import t from 'tap';
import { sourceKey } from '../../gateway/src/auth/limits/source-key.ts';

t.test('IPv4: the address itself, also when written IPv4-mapped', async (t) => {
  t.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  t.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  t.equal(sourceKey('::FFFF:192.0.2.1'), '192.0.2.1');
});

t.test('IPv6: its /64, however the address is spelled', async (t) => {
  const key = '2001:db8:0:1::/64';
  for (const address of ['2001:db8:0:1::1', '2001:0db8:0000:0001:ffff:ffff:ffff:ffff', '2001:DB8:0:1:a:b:c:d', '2001:db8::1:0:0:0:1',
    '2001:db8:0:1::1%eth0']) {
    t.equal(sourceKey(address), key, address);
  }
  t.equal(sourceKey('::1'), '0:0:0:0::/64');
  t.equal(sourceKey('fe80::1'), 'fe80:0:0:0::/64');
  t.equal(sourceKey('2001:db8::'), '2001:db8:0:0::/64');
  t.equal(sourceKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'an embedded IPv4 tail');
  t.not(sourceKey('2001:db8:0:2::1'), key, 'the next /64');
});

t.test('anything else is its own key', async (t) => {
  t.equal(sourceKey('not-an-address'), 'not-an-address');
});
