import t from 'tap';
import { createRevocationView } from '../../gateway/src/auth/tokens/revocation-view.ts';

// RFC 9700 section 4.14.2: a reused refresh token revokes its family; revocations end when the
// family's tokens stop verifying, are bounded by count, and fail closed when the bound is hit.

const LIFETIME_SEC = 7 * 24 * 3600 + 30;

function families(maxEntries?: number) {
  let now = 1_700_000_000_000;
  let evicted = 0;
  const revoked = createRevocationView({ nowMs: () => now, maxEntries, onEvicted: () => { evicted += 1; } });
  const nowSec = () => Math.floor(now / 1000);
  return {
    revoked,
    nowSec,
    advanceSec: (sec: number) => { now += sec * 1000; },
    evicted: () => evicted,
    revoke: (family: string, deviceId = 'sensor-1') => revoked.revoke({ family, deviceId, untilSec: nowSec() + LIFETIME_SEC }),
  };
}

t.test('a revoked family: all of its tokens, whatever their iat; other families and old tokens without one are not', async (t) => {
  const { revoked, revoke, nowSec } = families();
  revoke('fam-a');
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat: nowSec() - 100, fam: 'fam-a' }), true, 'its first pair');
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat: nowSec(), fam: 'fam-a' }), true, 'its newest pair');
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat: nowSec(), fam: 'fam-b' }), false, 'another family of the same device');
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat: nowSec() - 100, fam: undefined }), false, 'a token from before families');
  t.equal(revoked.size(), 1);
});

t.test('a revocation lasts until the family\'s last token stops verifying, then goes', async (t) => {
  const { revoked, revoke, advanceSec, nowSec } = families();
  revoke('fam-a');
  const iat = nowSec();
  advanceSec(LIFETIME_SEC - 1);
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat, fam: 'fam-a' }), true, 'a second before the end');
  advanceSec(1);
  t.equal(revoked.isRevoked({ sub: 'sensor-1', iat, fam: 'fam-a' }), false, 'at the end (its tokens no longer verify anyway)');
  t.equal(revoked.size(), 0, 'and it is dropped');
});

t.test('revoking a family twice keeps one entry', async (t) => {
  const { revoked, revoke } = families();
  revoke('fam-a');
  revoke('fam-a');
  t.equal(revoked.size(), 1);
});

t.test('bounded: past the bound the oldest family folds into its device, failing closed', async (t) => {
  const { revoked, revoke, advanceSec, nowSec, evicted } = families(3);
  const firstIat = nowSec();
  revoke('victim-fam', 'victim');
  advanceSec(10);
  const afterVictim = nowSec();
  for (let i = 0; i < 3; i += 1) revoke(`thief-${i}`, 'compromised');
  t.equal(evicted(), 1, 'one eviction counted');
  t.equal(revoked.size(), 4, 'three families and one folded device');
  t.equal(revoked.isRevoked({ sub: 'victim', iat: firstIat, fam: 'victim-fam' }), true,
    'the evicted family stays revoked: its device\'s tokens up to its revocation are');
  t.equal(revoked.isRevoked({ sub: 'victim', iat: afterVictim, fam: 'victim-new' }), false,
    'the device\'s later logins work');
  t.equal(revoked.isRevoked({ sub: 'bystander', iat: firstIat, fam: 'other' }), false, 'other devices are not touched');
  advanceSec(10);
  for (let i = 3; i < 5; i += 1) revoke(`thief-${i}`, 'compromised');
  t.equal(revoked.size(), 5, 'the compromised device folded once, widened after');
  for (const fam of ['thief-0', 'thief-1']) {
    t.equal(revoked.isRevoked({ sub: 'compromised', iat: afterVictim, fam }), true, `evicted ${fam} stays revoked`);
  }
});

t.test('bounded: the folded devices too, past which everything issued until then is revoked', async (t) => {
  const { revoked, revoke, advanceSec, nowSec } = families(2);
  const early = nowSec();
  for (let i = 0; i < 6; i += 1) {
    revoke(`fam-${i}`, `device-${i}`);
    advanceSec(1);
  }
  t.ok(revoked.size() <= 4, `two families and two devices at most (${revoked.size()})`);
  t.equal(revoked.isRevoked({ sub: 'device-0', iat: early, fam: 'fam-0' }), true, 'the first revocation still holds');
  t.equal(revoked.isRevoked({ sub: 'anyone', iat: early, fam: 'any' }), true, 'by revoking what was issued until then');
  t.equal(revoked.isRevoked({ sub: 'anyone', iat: nowSec(), fam: 'any' }), false, 'what is issued now is not');
});

t.test('misuse throws TypeError', async (t) => {
  t.throws(() => createRevocationView({ nowMs: Date.now, maxEntries: 0 }), TypeError);
});
