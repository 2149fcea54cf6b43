import t from 'tap';
import { buildFileStore } from '../../gateway/src/store/file/index.ts';
import { storeContract } from '../contract/store-contract.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Each case gets its own state directory; the peer is a second store on the same directory,
// as the CLI is beside a running gateway.
storeContract(t, {
  name: 'file',
  sharedLimits: false,
  sharedOnceIds: false,
  sharedWindows: false,
  async open(clock) {
    const stateDir = await tempDir(t, 'gw-store-contract-');
    const options = { nowMs: () => clock.nowMs() };
    return {
      store: await buildFileStore(stateDir, options),
      openPeer: () => buildFileStore(stateDir, options),
    };
  },
});
