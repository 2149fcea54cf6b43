import { execFile } from 'node:child_process';
import t from 'tap';
import { REPO_ROOT } from '../helpers/cli-run.ts';

// `make demo` (device-sim demo) as a user runs it: its own backend and gateway processes, the
// devices it provisions with the CLI, one of them under OSCORE. In a file of its own, so that this
// one and simulator-oscore.test.ts each stay well under tap's 60 s on a loaded machine.

const DEMO_TIMEOUT_MS = 50_000;

t.test('make demo: one device under OSCORE beside the others, a replayed datagram refused, exit 0', async (t) => {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['device-sim/bin/device-sim.js', 'demo', '--devices', '2', '--readings', '2'], { cwd: REPO_ROOT, timeout: DEMO_TIMEOUT_MS },
      (err, out, errOut) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout: out, stderr: errOut }));
  });
  t.equal(code, 0, `the demo exits 0 (stderr: ${stderr.trim() || 'none'})`);
  t.match(stdout, /gateway devices add demo-oscore-01 --oscore --with-secret/, 'it provisions the OSCORE device with the CLI');
  t.match(stdout, /ok {3}2\/2 protected readings answered 2\.01/, 'protected readings');
  t.match(stdout, /ok {3}backend received 2 readings from demo-oscore-01, each JWT with sec=oscore/);
  t.match(stdout, /a reading: \d+ bytes on the wire under OSCORE, no token \(1 802\.15\.4 frame\)/, 'the bytes of a protected reading');
  t.match(stdout, /ok {3}its last reading, copied off the air and sent again from another address -> 4\.01 \(wire error 23: replay\), backend untouched/);
  t.notMatch(stdout, /FAIL/, 'no expectation failed');
});
