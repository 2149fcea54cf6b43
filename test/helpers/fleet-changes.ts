import type { CoapAnswer, DeviceClient } from '../../device-sim/src/device-client.ts';

// Gateways sharing one store act as one: a change made through one of them (a removal, a
// revocation, a spent refresh token) holds on every other within CHANGE_DEADLINE_MS.

/** How soon every gateway of a fleet must apply a change another made. */
export const CHANGE_DEADLINE_MS = 1000;

/** GET /config with `token`: a bridged request every provisioned test device may make. */
export const getConfig = (client: DeviceClient, token: string): Promise<CoapAnswer> =>
  client.send({ method: 'GET', path: '/config', token });

/**
 * Sends GET /config until the answer is `code` (each try a round trip, no sleep); resolves with
 * the ms since `since`. Gives up at five times the deadline, so the caller's check of the time
 * fails instead of the test hanging.
 */
export async function untilAnswered(client: DeviceClient, token: string, code: string, since: number): Promise<number> {
  for (;;) {
    const answer = await getConfig(client, token);
    const elapsed = Date.now() - since;
    if (answer.code === code || elapsed > 5 * CHANGE_DEADLINE_MS) return elapsed;
  }
}
