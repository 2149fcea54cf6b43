// The ceiling: a plain node-coap server echoing the payload (no auth, no bridge), in its own
// process, driven by the same load generator and the same requests (token option included) as
// the gateway benchmark. Closed loop, bounded in flight.
import { echoPeak } from './echo-runs.ts';
import { emitResult, flag } from './lib.ts';

const peak = await echoPeak('node-coap');
emitResult({
  ceiling_rps: peak.rps,
  ceiling_p99_ms: peak.p99Ms,
  ceiling_concurrency: Number(flag('concurrency') ?? 64),
  ceiling_request_bytes: peak.requestBytes,
  ceiling_server_cpu_us_per_request: peak.serverCpuUs,
  generator_cpu_us_per_request: peak.generatorCpuUs,
});
