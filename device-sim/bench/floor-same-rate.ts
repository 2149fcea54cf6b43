// The floor for gateway-half-load: the raw node:dgram echo driven open loop at the same rate.
// Its p99 is what the load generator and the kernel add with no CoAP stack at all.
import { echoAtRate } from './echo-runs.ts';
import { emitResult } from './lib.ts';

const atRate = await echoAtRate('raw');
emitResult({
  floor_p99_ms_at_half_load_rate: atRate.p99Ms,
  floor_p50_ms_at_half_load_rate: atRate.p50Ms,
  floor_cpu_us_per_request_at_half_load_rate: atRate.serverCpuUs,
  floor_half_load_udp_drops: atRate.udpDrops,
});
