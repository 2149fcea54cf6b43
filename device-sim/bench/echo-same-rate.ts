// A control for gateway-half-load: the node-coap echo server driven open loop at the same rate.
// Its p99 is what the load generator, the kernel and node-coap add by themselves; what the
// gateway shows above it is the gateway's.
import { echoAtRate } from './echo-runs.ts';
import { emitResult } from './lib.ts';

const atRate = await echoAtRate('node-coap');
emitResult({
  echo_p99_ms_at_half_load_rate: atRate.p99Ms,
  echo_p50_ms_at_half_load_rate: atRate.p50Ms,
  echo_cpu_us_per_request_at_half_load_rate: atRate.serverCpuUs,
  echo_half_load_udp_drops: atRate.udpDrops,
});
