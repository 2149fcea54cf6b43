// The figures `device-sim bench` prints: one row per figure, in reading order, each with its
// unit and, where the raw node:dgram echo measured the same thing in the run, its ratio to that.

/** What the scenario processes reported, by field, and what the runner derived from it. */
export type Results = Record<string, unknown>;

export const num = (results: Results, field: string): number | undefined =>
  (typeof results[field] === 'number' ? results[field] as number : undefined);

interface Row {
  field: string;
  label: string | ((r: Results) => string);
  unit: string;
  /** The raw node:dgram echo's figure for the same measure: the row also shows value / floor. */
  floor?: string;
}

/**
 * The rows of one measure taken of the floor, the node-coap echo and the gateway in one run, in
 * `unit`: each but the floor's own is also shown over the floor's figure.
 */
const againstFloor = (floor: string, unit: string, rows: readonly (readonly [field: string, label: string])[]): Row[] =>
  rows.map(([field, label]) => (field === floor ? { field, label, unit } : { field, label, unit, floor }));

const fleetSize = (r: Results) => `${num(r, 'rss_provisioned_devices') ?? '?'} provisioned, ${num(r, 'rss_active_devices') ?? '?'} active`;
export const ROWS: readonly Row[] = [
  ...againstFloor('floor_rps', 'req/s', [
    ['floor_rps', 'raw node:dgram echo floor, peak'],
    ['ceiling_rps', 'node-coap echo ceiling, peak'],
    ['gateway_rps', 'gateway end to end, peak'],
  ]),
  { field: 'ratio', label: 'gateway / ceiling', unit: 'x' },
  ...againstFloor('floor_server_cpu_us_per_request', 'us', [
    ['floor_server_cpu_us_per_request', 'floor CPU per request, peak'],
    ['ceiling_server_cpu_us_per_request', 'echo server CPU per request, peak'],
    ['gateway_cpu_us_per_request', 'gateway CPU per request, peak'],
  ]),
  { field: 'cpu_ratio', label: 'echo CPU per request / gateway CPU per request', unit: 'x' },
  { field: 'backend_cpu_us_per_request', label: 'backend CPU per request', unit: 'us' },
  { field: 'generator_cpu_us_per_request', label: 'load generator CPU per request (echo run)', unit: 'us', floor: 'floor_generator_cpu_us_per_request' },
  ...againstFloor('floor_p99_ms', 'ms', [
    ['floor_p99_ms', 'floor p99 at peak (closed loop)'],
    ['ceiling_p99_ms', 'echo server p99 at peak (closed loop)'],
    ['gateway_peak_p99_ms', 'gateway p99 at peak (closed loop)'],
  ]),
  { field: 'half_load_rps', label: 'half of the gateway\'s peak (open loop rate)', unit: 'req/s' },
  ...againstFloor('floor_p99_ms_at_half_load_rate', 'ms', [
    ['p99_ms_at_half_load', 'gateway p99 at half of peak (open loop)'],
    ['echo_p99_ms_at_half_load_rate', 'echo server p99 at the same rate'],
    ['floor_p99_ms_at_half_load_rate', 'floor p99 at the same rate'],
  ]),
  { field: 'p99_half_load_vs_echo', label: 'gateway p99 / echo p99 at that rate', unit: 'x' },
  ...againstFloor('floor_p50_ms_at_half_load_rate', 'ms', [
    ['p50_ms_at_half_load', 'gateway p50 at half of peak'],
    ['echo_p50_ms_at_half_load_rate', 'echo server p50 at the same rate'],
    ['floor_p50_ms_at_half_load_rate', 'floor p50 at the same rate'],
  ]),
  ...againstFloor('floor_cpu_us_per_request_at_half_load_rate', 'us', [
    ['half_load_gateway_cpu_us_per_request', 'gateway CPU per request at half of peak'],
    ['echo_cpu_us_per_request_at_half_load_rate', 'echo server CPU per request at the same rate'],
    ['floor_cpu_us_per_request_at_half_load_rate', 'floor CPU per request at the same rate'],
  ]),
  { field: 'cpu_ratio_at_half_load', label: 'echo CPU / gateway CPU per request at that rate', unit: 'x' },
  { field: 'half_load_udp_drops', label: 'datagrams dropped (full receive buffer) at half load', unit: '' },
  { field: 'half_load_gc_pause_max_ms', label: 'gateway longest GC pause at half load', unit: 'ms' },
  { field: 'gateway_rss_mb_after_peak', label: 'gateway RSS after the peak run (1,000 devices)', unit: 'MB' },
  { field: 'login_rps', label: 'logins', unit: '/s' },
  { field: 'secret_login_rps', label: 'secret logins (assertion-logins run)', unit: '/s' },
  { field: 'assertion_login_rps', label: 'assertion logins (ES256), same run', unit: '/s' },
  { field: 'assertion_login_p99_ms', label: 'assertion login p99 (closed loop, 32 in flight)', unit: 'ms' },
  { field: 'assertion_vs_secret_logins', label: 'assertion logins / secret logins', unit: 'x' },
  { field: 'jose_es256_verify_per_sec', label: 'jose ES256 jwtVerify alone, one process', unit: '/s' },
  { field: 'assertion_logins_vs_jose_verify', label: 'assertion logins / jose verify rate', unit: 'x' },
  { field: 'verify_cold_per_s', label: 'token verification, cold (signature)', unit: '/s' },
  { field: 'verify_jose_per_s', label: 'jose jwtVerify alone', unit: '/s' },
  { field: 'verify_cached_per_s', label: 'token verification, same token (cache)', unit: '/s' },
  { field: 'verify_cached_fleet_per_s', label: 'token verification, 2,000 tokens in turn', unit: '/s' },
  { field: 'verify_cwt_cold_per_s', label: 'CWT verification, cold (signature)', unit: '/s' },
  { field: 'verify_cwt_cold_vs_jwt', label: 'CWT / JWT verification, cold', unit: 'x' },
  { field: 'verify_cwt_cached_per_s', label: 'CWT verification, same token (cache)', unit: '/s' },
  { field: 'jwt_chars', label: 'access JWT, characters', unit: '' },
  { field: 'cwt_bytes', label: 'access CWT, bytes', unit: '' },
  { field: 'reading_bytes_jwt', label: 'a 25-byte reading with the JWT, datagram bytes', unit: '' },
  { field: 'reading_bytes_cwt', label: 'a 25-byte reading with the CWT, datagram bytes', unit: '' },
  { field: 'backend_jwt_mint_per_s', label: 'backend JWT minted per device token', unit: '/s' },
  { field: 'backend_mint_vs_jose_sign', label: 'backend JWT mint / jose SignJWT alone', unit: 'x' },
  { field: 'backend_jwt_held_per_s', label: 'backend JWT, held (same token)', unit: '/s' },
  { field: 'verify_cached_vs_cold', label: 'cached / cold', unit: 'x' },
  { field: 'cbor_decode_per_s', label: 'CBOR decode of a reading', unit: '/s' },
  { field: 'cbor_to_json_per_s', label: 'CBOR -> JSON of a reading', unit: '/s' },
  { field: 'rss_idle_mb_100k_devices', label: (r) => `gateway RSS, ${num(r, 'rss_provisioned_devices') ?? '?'} provisioned, idle`, unit: 'MB' },
  { field: 'rss_mb_100k_devices', label: (r) => `gateway RSS, ${fleetSize(r)}`, unit: 'MB' },
  { field: 'rss_peak_mb_100k_devices', label: 'gateway peak RSS, same run', unit: 'MB' },
  { field: 'rss_idle_mb_100k_devices_redis', label: (r) => `gateway on Redis, ${num(r, 'rss_provisioned_devices_redis') ?? '?'} provisioned, idle`, unit: 'MB' },
  { field: 'rss_mb_100k_devices_redis', label: (r) => `gateway on Redis, ${num(r, 'rss_active_devices_redis') ?? '?'} active`, unit: 'MB' },
  { field: 'rss_peak_mb_100k_devices_redis', label: 'gateway on Redis, peak RSS, same run', unit: 'MB' },
  { field: 'rss_view_entries_redis', label: 'devices in its view (not the registry)', unit: '' },
  { field: 'redis_server_rss_mb_100k_devices', label: 'redis-server RSS, same run', unit: 'MB' },
  { field: 'flood_legit_rate_per_s', label: 'legitimate load beside the flood (open loop)', unit: 'req/s' },
  { field: 'noflood_legit_p99_ms', label: 'legitimate p99, no flood', unit: 'ms' },
  { field: 'flood_legit_p99_ms', label: 'legitimate p99 during the forged-token flood', unit: 'ms' },
  { field: 'flood_legit_p99_vs_noflood', label: 'p99 with the flood / without (same run)', unit: 'x' },
  { field: 'noflood_legit_success_rate', label: 'legitimate success rate, no flood', unit: '' },
  { field: 'flood_legit_success_rate', label: 'legitimate success rate during the flood', unit: '' },
  { field: 'noflood_legit_sent', label: 'legitimate requests sent, no flood', unit: '' },
  { field: 'flood_legit_sent', label: 'legitimate requests sent during the flood', unit: '' },
  { field: 'flood_rate_per_s', label: 'forged tokens sent (random signature, real kid)', unit: '/s' },
  { field: 'flood_sent', label: 'forged datagrams sent', unit: '' },
  { field: 'flood_answered_401', label: 'flood answered 4.01', unit: '' },
  { field: 'flood_answered_429', label: 'flood answered 4.29 (no signature check)', unit: '' },
  { field: 'flood_unanswered', label: 'flood unanswered', unit: '' },
  { field: 'noflood_gateway_cpu_per_s', label: 'gateway CPU, no flood', unit: 's/s' },
  { field: 'flood_gateway_cpu_per_s', label: 'gateway CPU during the flood', unit: 's/s' },
  { field: 'flood_gateway_cpu_share', label: 'share of that CPU spent on the flood', unit: '' },
  { field: 'flood_gateway_cpu_us_per_forgery', label: 'gateway CPU per forged datagram', unit: 'us' },
  { field: 'oscore_step_cwt_rps', label: 'oscore: readings in clear with a cached CWT', unit: 'req/s' },
  { field: 'oscore_rps', label: 'readings under OSCORE, no token (same gateway, same run)', unit: 'req/s' },
  { field: 'oscore_vs_cwt_rps', label: 'OSCORE / CWT throughput', unit: 'x' },
  { field: 'oscore_step_cwt_cpu_us_per_request', label: 'gateway CPU per request, CWT (cached)', unit: 'us' },
  { field: 'oscore_cpu_us_per_request', label: 'gateway CPU per request, OSCORE', unit: 'us' },
  { field: 'oscore_vs_cwt_cpu', label: 'OSCORE / CWT CPU per request', unit: 'x' },
  { field: 'oscore_step_cwt_p99_ms', label: 'p99, CWT (closed loop)', unit: 'ms' },
  { field: 'oscore_p99_ms', label: 'p99, OSCORE (closed loop)', unit: 'ms' },
  { field: 'wire_reading_bytes_jwt', label: 'a 25-byte reading on the wire: JWT (2-byte CoAP token)', unit: 'B' },
  { field: 'wire_reading_bytes_cwt', label: 'the same reading: CWT', unit: 'B' },
  { field: 'wire_reading_bytes_oscore', label: 'the same reading: OSCORE, no token', unit: 'B' },
  { field: 'wire_reading_frames_oscore', label: 'its 802.15.4 frames', unit: '' },
  { field: 'wire_reading_bytes_oscore_cwt', label: 'the same reading: OSCORE with the CWT inside', unit: 'B' },
  { field: 'wire_reading_cwt_vs_oscore', label: 'CWT reading / OSCORE reading', unit: 'x' },
  { field: 'wire_get_bytes_jwt', label: 'GET /config on the wire: JWT', unit: 'B' },
  { field: 'wire_get_bytes_cwt', label: 'GET /config: CWT', unit: 'B' },
  { field: 'wire_get_bytes_oscore', label: 'GET /config: OSCORE, no token', unit: 'B' },
  { field: 'wire_reading_answer_bytes_cwt', label: 'the reading\'s answer: in clear', unit: 'B' },
  { field: 'wire_reading_answer_bytes_oscore', label: 'the reading\'s answer: under OSCORE', unit: 'B' },
  { field: 'oscore_flood_legit_rate_per_s', label: 'oscore-flood: legitimate OSCORE load (open loop)', unit: 'req/s' },
  { field: 'oscore_noflood_legit_p99_ms', label: 'legitimate p99, no flood', unit: 'ms' },
  { field: 'oscore_flood_legit_p99_ms', label: 'legitimate p99 during the forged-OSCORE flood', unit: 'ms' },
  { field: 'oscore_flood_legit_p99_vs_noflood', label: 'p99 with the flood / without (same run)', unit: 'x' },
  { field: 'oscore_noflood_legit_success_rate', label: 'legitimate success rate, no flood', unit: '' },
  { field: 'oscore_flood_legit_success_rate', label: 'legitimate success rate during the flood', unit: '' },
  { field: 'oscore_flood_rate_per_s', label: 'forged OSCORE datagrams sent (known kid, random ciphertext)', unit: '/s' },
  { field: 'oscore_flood_answered_400', label: 'flood answered 4.00 (decryption failed)', unit: '' },
  { field: 'oscore_flood_answered_429', label: 'flood answered 4.29', unit: '' },
  { field: 'oscore_flood_unanswered', label: 'flood unanswered', unit: '' },
  { field: 'oscore_flood_gateway_cpu_share', label: 'share of the gateway\'s CPU spent on the flood', unit: '' },
  { field: 'oscore_flood_gateway_cpu_us_per_forgery', label: 'gateway CPU per forged OSCORE datagram', unit: 'us' },
  { field: 'store_calls_per_cached_request_file', label: 'store calls per request, cached token, file', unit: '' },
  { field: 'store_calls_per_cached_request_redis', label: 'store calls per request, cached token, Redis', unit: '' },
  { field: 'store_calls_per_first_request_file', label: 'store calls per first request (new token), file', unit: '' },
  { field: 'store_calls_per_first_request_redis', label: 'store calls per first request (new token), Redis', unit: '' },
  { field: 'store_calls_per_login_file', label: 'store calls per first login of a device, file', unit: '' },
  { field: 'store_calls_per_login_redis', label: 'store calls per first login of a device, Redis', unit: '' },
  { field: 'store_calls_per_login_again_file', label: 'store calls per login, device in the view, file', unit: '' },
  { field: 'store_calls_per_login_again_redis', label: 'store calls per login, device in the view, Redis', unit: '' },
  { field: 'fleet_rate_per_s', label: (r) => `fleet-redis: open loop, ${num(r, 'fleet_devices') ?? '?'} devices, ${num(r, 'fleet_duration_sec') ?? '?'} s each`, unit: 'req/s' },
  ...(['file', 'redis', 'two'] as const).flatMap((name): Row[] => {
    const label = { file: '(a) 1 gateway, file', redis: '(b) 1 gateway, Redis', two: '(c) 2 gateways, 1 Redis' }[name];
    return [
      { field: `fleet_${name}_rps`, label: `${label}: achieved`, unit: 'req/s' },
      { field: `fleet_${name}_p50_ms`, label: `${label}: p50${name === 'two' ? ' (worse half)' : ''}`, unit: 'ms' },
      { field: `fleet_${name}_p99_ms`, label: `${label}: p99${name === 'two' ? ' (worse half)' : ''}`, unit: 'ms' },
      { field: `fleet_${name}_cpu_us_per_request`, label: `${label}: gateway${name === 'two' ? 's' : ''}${name === 'file' ? '' : ' + Redis'} CPU/request`, unit: 'us' },
      { field: `fleet_${name}_machine_busy`, label: `${label}: cores busy (0-1, any process)`, unit: '' },
      { field: `fleet_${name}_unexpected`, label: `${label}: answers other than 2.01`, unit: '' },
    ];
  }),
  { field: 'fleet_redis_vs_file_rps', label: 'throughput (b) / (a)', unit: 'x' },
  { field: 'fleet_redis_vs_file_p99', label: 'p99 (b) / (a)', unit: 'x' },
  { field: 'fleet_redis_vs_file_cpu', label: 'CPU per request (b) / (a)', unit: 'x' },
  { field: 'fleet_two_vs_redis_rps', label: 'throughput (c) / (b)', unit: 'x' },
  { field: 'fleet_two_vs_redis_p99', label: 'p99 (c) / (b)', unit: 'x' },
  { field: 'fleet_two_vs_redis_cpu', label: 'CPU per request (c) / (b)', unit: 'x' },
  { field: 'registry_million_devices', label: 'registry-million: file store, provisioned devices', unit: '' },
  { field: 'registry_million_open_ms', label: 'store open (start) with them', unit: 'ms' },
  { field: 'registry_million_rss_mb_store_open', label: 'RSS with the store open', unit: 'MB' },
  { field: 'registry_million_add_one_ms', label: 'add one device (open store)', unit: 'ms' },
  { field: 'registry_million_cli_add_one_process_wall_ms', label: 'add one device, a CLI process start to exit', unit: 'ms' },
  { field: 'registry_million_longest_stall_ms', label: 'longest event-loop stall, watching store, churn', unit: 'ms' },
  { field: 'registry_million_stall_floor_ms', label: 'same probe, churn elsewhere (the machine\'s floor)', unit: 'ms' },
  { field: 'registry_million_max_rss_mb', label: 'peak RSS of the watching process', unit: 'MB' },
  { field: 'registry_million_migrate_open_ms', label: 'one-time migration of an old devices.json', unit: 'ms' },
];

interface TargetResult { name: string; target: string; value: number | null; met: boolean | null; missed_by_percent: number }

export function formatSummary(summary: Record<string, unknown> & { targets: TargetResult[] }): string[] {
  const env = summary.environment as { node: string; cpu: string; cores: number; loadavg_1m_at_start: number; loadavg_1m_at_end: number };
  const lines = [
    `figures (Node ${env.node}, ${env.cpu} x ${env.cores} cores, load average ${env.loadavg_1m_at_start} -> ${env.loadavg_1m_at_end});`,
    '"x floor": the figure over the raw node:dgram echo\'s same measure (rps, p99, CPU per request)',
  ];
  for (const { field, label, unit, floor } of ROWS) {
    const value = summary[field];
    if (typeof value !== 'number') continue;
    const text = typeof label === 'function' ? label(summary) : label;
    const vsFloor = floor === undefined ? undefined : summary[`${field}_vs_floor`];
    const ratio = typeof vsFloor === 'number' ? `${vsFloor} x floor` : '';
    lines.push(`  ${text.padEnd(54)} ${String(value).padStart(10)} ${unit.padEnd(5)} ${ratio.padStart(14)}   (${field})`);
  }
  lines.push('targets (reported, not asserted):');
  for (const t of summary.targets) {
    const verdict = t.met === null ? 'not measured' : t.met ? 'met' : `MISSED by ${t.missed_by_percent} %`;
    lines.push(`  ${t.name.padEnd(54)} ${String(t.value ?? '-').padStart(10)}   target ${t.target.padEnd(7)} ${verdict}`);
  }
  return lines;
}
