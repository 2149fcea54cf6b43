import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildFileStore } from '../../gateway/src/store/file/index.ts';
import { storeContract } from '../contract/store-contract.ts';

// Each case gets its own state directory; the peer is a second store on the same directory,
// as the CLI is beside a running gateway.
storeContract(t, {
  name: 'file',
  sharedLimits: false,
  sharedOnceIds: false,
  async open(clock) {
    const stateDir = await mkdtemp(join(tmpdir(), 'gw-store-contract-'));
    t.teardown(() => rm(stateDir, { recursive: true, force: true }));
    const options = { nowMs: () => clock.nowMs() };
    return {
      store: await buildFileStore(stateDir, options),
      openPeer: () => buildFileStore(stateDir, options),
    };
  },
});
