import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Keystore } from '../auth/index.ts';

/**
 * The gateway's Prometheus metrics, on a registry of its own (no prom-client global state), so
 * two gateways in one process (tests) never share counters.
 */
/** Sizes of bounded tables owned elsewhere, read when metrics are scraped. */
export interface MetricSources {
  loginLimiterEntries?: () => number;
  revokedFamilies?: () => number;
  /** Round trips to the shared store so far (the store counts them). */
  storeCalls?: () => number;
  /** 1 while the shared store answers, 0 while it is down. */
  storeUp?: () => boolean;
  /** Devices the gateway's in-memory view of the registry holds now. */
  deviceViewEntries?: () => number;
  nonceEntries?: () => number;
  backendTokenEntries?: () => number;
  /** OSCORE security contexts held derived in memory. */
  oscoreContexts?: () => number;
}

export function createMetrics(keystore: () => Keystore | undefined, sources: MetricSources = {}) {
  const registry = new Registry();
  const requests = new Counter({
    name: 'coap_gateway_requests_total', help: 'CoAP requests answered, by route and CoAP response code',
    labelNames: ['route', 'code'] as const, registers: [registry],
  });
  const logins = new Counter({
    name: 'coap_gateway_logins_total', help: 'Logins and refreshes, by method (secret, assertion, refresh) and outcome',
    labelNames: ['method', 'outcome'] as const, registers: [registry],
  });
  const revocations = new Counter({
    name: 'coap_gateway_revocations_total',
    help: 'Revocations made through this gateway (refresh reuse, admin API) and heard from the store, by kind (family, token, device, disabled)',
    labelNames: ['kind'] as const, registers: [registry],
  });

  const verifications = new Counter({
    name: 'coap_gateway_token_verifications_total', help: 'Access token verifications, by outcome (cache_hit: verified before)',
    labelNames: ['outcome'] as const, registers: [registry],
  });
  const backendLatency = new Histogram({
    name: 'coap_gateway_backend_latency_seconds', help: 'Time from forwarding a request to the backend\'s answer',
    labelNames: ['route'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const keyReloads = new Counter({
    name: 'coap_gateway_key_reloads_total', help: 'Keystore reloads, by cause (watch: the state directory changed; unknown_kid)',
    labelNames: ['cause'] as const, registers: [registry],
  });
  const datagramsDropped = new Counter({
    name: 'coap_gateway_datagrams_dropped_total',
    help: 'Datagrams not processed as requests (answered with RST when confirmable), by reason',
    labelNames: ['reason'] as const, registers: [registry],
  });
  const blockBufferBytes = new Gauge({
    name: 'coap_gateway_block_buffer_bytes', help: 'Bytes of Block1 uploads buffered now', registers: [registry],
  });
  const retransmissions = new Counter({
    name: 'coap_gateway_retransmissions_total', help: 'Confirmable separate responses sent again for want of an ACK',
    registers: [registry],
  });
  const resetsReceived = new Counter({
    name: 'coap_gateway_resets_received_total', help: 'RST messages received from devices', registers: [registry],
  });
  const addressChallenges = new Counter({
    name: 'coap_gateway_address_challenges_total',
    help: 'Unauthenticated answers larger than their request held back for an Echo round trip (RFC 9175)',
    registers: [registry],
  });
  const tokenBudgetRefusals = new Counter({
    name: 'coap_gateway_token_budget_refusals_total',
    help: 'Tokens refused with 4.29 unchecked: their source address or named device spent its budget of failed signature checks',
    labelNames: ['kind'] as const, registers: [registry],
  });
  const familiesRevoked = new Counter({
    name: 'coap_gateway_refresh_families_revoked_total',
    help: 'Refresh-token families revoked because a spent refresh token was presented again (possible theft)',
    registers: [registry],
  });
  new Gauge({
    name: 'coap_gateway_login_limiter_entries',
    help: 'Sources and device ids the failed-login limiter holds now (bounded; evictions under table="login_limiter")',
    registers: [registry],
    collect() { this.set(sources.loginLimiterEntries?.() ?? 0); },
  });
  new Gauge({
    name: 'coap_gateway_revoked_families',
    help: 'Refresh-token family revocations held now, with the devices older ones were folded into',
    registers: [registry],
    collect() { this.set(sources.revokedFamilies?.() ?? 0); },
  });
  new Counter({
    name: 'coap_gateway_store_calls_total',
    help: 'Round trips to the shared store (file or Redis); a cached token costs none',
    registers: [registry],
    collect() { this.reset(); this.inc(sources.storeCalls?.() ?? 0); },
  });
  new Gauge({
    name: 'coap_gateway_store_up', help: '1 while the shared store answers; 0 while it is down (logins and refreshes get 5.03)',
    registers: [registry],
    collect() { this.set(sources.storeUp?.() === false ? 0 : 1); },
  });
  const storeOutages = new Counter({
    name: 'coap_gateway_store_outages_total', help: 'Times the shared store went down (each ends with a full resync)',
    registers: [registry],
  });
  new Gauge({
    name: 'coap_gateway_device_view_entries',
    help: 'Devices held in the in-memory view of the registry (bounded; evictions under table="device_view")',
    registers: [registry],
    collect() { this.set(sources.deviceViewEntries?.() ?? 0); },
  });
  new Gauge({
    name: 'coap_gateway_nonce_entries',
    help: 'Login nonces this gateway issued that are still outstanding (bounded per address and in all; evictions under table="nonces")',
    registers: [registry],
    collect() { this.set(sources.nonceEntries?.() ?? 0); },
  });
  const backendTokensMinted = new Counter({
    name: 'coap_gateway_backend_tokens_minted_total',
    help: 'JWTs signed for the backend, one per device token while it is held (evictions under table="backend_tokens")',
    registers: [registry],
  });
  new Gauge({
    name: 'coap_gateway_backend_token_entries', help: 'JWTs for the backend held now (bounded)',
    registers: [registry],
    collect() { this.set(sources.backendTokenEntries?.() ?? 0); },
  });
  const oscoreRequests = new Counter({
    name: 'coap_gateway_oscore_requests_total',
    help: 'OSCORE-protected requests (RFC 8613), by outcome: ok, bad_option, unknown_context, decrypt_failed, replay, echo_challenge, bad_inner',
    labelNames: ['outcome'] as const, registers: [registry],
  });
  const oscoreReplays = new Counter({
    name: 'coap_gateway_oscore_replays_total', help: 'OSCORE requests refused as replays (their Partial IV seen before, RFC 8613 section 7.4)',
    registers: [registry],
  });
  const oscoreEchoRecoveries = new Counter({
    name: 'coap_gateway_oscore_echo_recoveries_total',
    help: 'OSCORE replay windows re-established with an Echo round trip (RFC 8613 Appendix B.1.2), after a restart or on a new context',
    registers: [registry],
  });
  new Gauge({
    name: 'coap_gateway_oscore_contexts', help: 'OSCORE security contexts held derived in memory (bounded; evictions under table="oscore_contexts")',
    registers: [registry],
    collect() { this.set(sources.oscoreContexts?.() ?? 0); },
  });
  const evictions = new Counter({
    name: 'coap_gateway_evictions_total', help: 'Entries pushed out of a bounded table before their time, by table',
    labelNames: ['table'] as const, registers: [registry],
  });
  new Gauge({
    name: 'coap_gateway_keys', help: 'Signing keys by state', labelNames: ['state'] as const, registers: [registry],
    collect() {
      this.reset();
      const keys = keystore()?.list() ?? [];
      for (const state of ['active', 'verifying', 'retired'] as const) {
        this.set({ state }, keys.filter((k) => k.state === state).length);
      }
    },
  });
  return {
    registry,
    requests,
    logins,
    revocations,
    verifications,
    backendLatency,
    keyReloads,
    datagramsDropped,
    blockBufferBytes,
    retransmissions,
    resetsReceived,
    evictions,
    addressChallenges,
    familiesRevoked,
    tokenBudgetRefusals,
    storeOutages,
    backendTokensMinted,
    oscoreRequests,
    oscoreReplays,
    oscoreEchoRecoveries,
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
