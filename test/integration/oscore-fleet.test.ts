import t from 'tap';
import { ContentFormat, ErrorKey, WireError, decodeCbor, encodeCbor } from '../../gateway/src/wire/index.ts';
import { runCli } from '../helpers/cli-run.ts';
import { startGatewayProcess } from '../helpers/gateway-process.ts';
import { OscoreUdpDevice, innerRequest, replayed, type Exchanged, type OscoreCredentials } from '../helpers/oscore-udp.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Two `gateway serve` processes sharing one real Redis: the OSCORE replay window is the fleet's
// (one check-and-set script per request), so a datagram accepted by one gateway is a replay on
// the other, and a context rotated through one stops on both.

const CBOR_FORMAT = { number: 12, value: Buffer.from([ContentFormat.cbor]) };
const CHANGE_LIMIT_MS = 5000;
const errorCode = (answer: { payload: Buffer }) => (decodeCbor(answer.payload) as Map<number, number>).get(ErrorKey.code);

/** Repeats a request (each a real exchange) until its answer is `code`, or the limit passes: a change reaching a gateway. */
async function untilAnswered(ask: () => Promise<Exchanged>, code: string): Promise<Exchanged> {
  const until = Date.now() + CHANGE_LIMIT_MS;
  for (;;) {
    const answer = await ask();
    if ((answer.inner?.code ?? answer.reply.code) === code || Date.now() > until) return answer;
  }
}

t.test('an OSCORE fleet on Redis: one replay window, one context', async (t) => {
  const redis = await startRedis(t);
  const cliState = await tempDir(t, 'gw-oscore-fleet-');
  const added = await runCli(['devices', 'add', 'ox-1', '--oscore', '--scope', 'telemetry:write', '--store', redis.url, '--state', cliState]);
  t.equal(added.code, 0, added.stderr);
  const { oscore } = JSON.parse(added.stdout) as { oscore: OscoreCredentials };
  const [a, b] = await Promise.all([0, 1].map(() => startGatewayProcess(t, { store: redis.url, provisioned: [] })));
  const onA = await OscoreUdpDevice.open(t, a!.port, oscore);
  const reading = encodeCbor(new Map([[1, 20.5]]));

  const first = await onA.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
  t.equal(first.recovered, false, 'a context provisioned on Redis has its window already: no Echo round trip');
  t.equal(first.inner?.code, '2.01', 'A serves it');
  await a!.backend.waitForRequests(1);

  const onB = await OscoreUdpDevice.open(t, b!.port, oscore, onA.sequenceNumber);
  const replay = await onB.exchange(replayed(first.datagram, 0x6601), first.binding);
  t.equal(replay.reply.code, '4.01', 'the datagram A accepted, replayed to B: 4.01');
  t.equal(errorCode(replay.reply), WireError.oscoreReplay, 'wire code 23');
  t.equal(b!.backend.requests.length, 0, 'B\'s backend never saw it');
  t.equal(a!.backend.requests.length, 1, 'the reading reached a backend once');

  const next = await onB.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
  t.equal(next.recovered, false, 'B knows the window too');
  t.equal(next.inner?.code, '2.01', 'the device\'s next request, to B: served');
  const backOnA = await onA.exchange(replayed(next.datagram, 0x6602), next.binding);
  t.equal(backOnA.reply.code, '4.01', 'and B\'s, replayed to A: refused');

  const rotated = await runCli(['devices', 'oscore', 'ox-1', '--rotate', '--store', redis.url, '--state', cliState]);
  t.equal(rotated.code, 0, rotated.stderr);
  for (const [name, gateway] of [['A', onA], ['B', onB]] as const) {
    const old = await untilAnswered(() => gateway.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading)), '4.00');
    t.equal(old.reply.code, '4.00', `${name} refuses the rotated-away context`);
  }
  const renewed = (JSON.parse(rotated.stdout) as { oscore: OscoreCredentials }).oscore;
  const withNew = await OscoreUdpDevice.open(t, b!.port, renewed);
  const answer = await withNew.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
  t.equal(answer.inner?.code, '2.01', 'the new context works at once, from sequence number 0');
});
