// The physical floor: a bare node:dgram socket that turns each request into its answer in place
// (raw-echo-server.ts), driven exactly like the ceiling. What Node, the kernel and the load
// generator cost by themselves; every other figure is also printed as a ratio to this one.
import { echoPeak } from './echo-runs.ts';
import { emitResult } from './lib.ts';

const peak = await echoPeak('raw');
emitResult({
  floor_rps: peak.rps,
  floor_p99_ms: peak.p99Ms,
  floor_unexpected: peak.unexpected,
  floor_server_cpu_us_per_request: peak.serverCpuUs,
  floor_generator_cpu_us_per_request: peak.generatorCpuUs,
});
