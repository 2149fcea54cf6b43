// Reads tap's output on stdin, passes it through, and ends with the line CI reads:
// "N passed, N failed". Exits non-zero when tap reported failures or no summary.
import { createInterface } from 'node:readline';

let summary;
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(`${line}\n`);
  const m = /^# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/.exec(line);
  if (m) summary = { total: Number(m[1]), pass: Number(m[2] ?? 0), fail: Number(m[3] ?? 0) };
}
if (summary === undefined) {
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
// Tests that neither passed nor failed (todo, skip) are not counted as failures.
const failed = summary.fail;
process.stdout.write(`${summary.pass} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
