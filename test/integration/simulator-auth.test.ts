import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runFleet } from '../../device-sim/src/fleet.ts';
import type { ScenarioName } from '../../device-sim/src/scenarios.ts';
import { addFleet, gatewayCli } from '../../device-sim/src/spawn-gateway.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// The simulator's scenarios for devices that hold their own keys, each with a small fleet
// provisioned by the real CLI (`--key-type ES256`), against a real gateway.

const FLEET_SIZE = 4;

async function keyedFleet(t: Test, h: Harness) {
  const file = join(await tempDir(t, 'sim-keys-'), 'devices.json');
  return addFleet(file, FLEET_SIZE, ['--key-type', 'ES256', '--state', h.stateDir]);
}

async function runScenario(t: Test, scenario: ScenarioName) {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 1000 } });
  const devices = await keyedFleet(t, h);
  const report = await runFleet({
    host: '127.0.0.1', port: h.port, devices, scenario, count: 8, concurrency: 2, timeoutMs: 10_000,
    revokeDevice: async (id) => { await gatewayCli(['devices', 'revoke', id, '--state', h.stateDir]); },
  });
  t.equal(report.requests.timeouts, 0, `${scenario}: no timeouts`);
  t.equal(report.requests.asExpected, report.requests.answered, `${scenario}: every answer as the scenario expects`);
  t.ok(report.requests.answered > 0, `${scenario}: requests were answered`);
  await h.assertStillServes(t);
  return report;
}

for (const scenario of ['assertion', 'clockless', 'revoked', 'refresh-reuse'] as const) {
  t.test(`${scenario}: a small fleet sees only the answers the scenario expects`, async (t) => {
    await runScenario(t, scenario);
  });
}
