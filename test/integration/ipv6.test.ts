import t from 'tap';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { startHarness } from '../helpers/harness.ts';

t.test('IPv6: a gateway on ::1 logs devices in and bridges their requests', async (t) => {
  const h = await startHarness(t, { config: { coapHost: '::1' } });
  t.equal(h.gateway.address().family, 'IPv6');
  const secret = await h.provision('v6-sensor');
  const device = await h.device();
  const { answer, tokens } = await device.login('v6-sensor', secret);
  t.equal(answer.code, '2.01');
  const res = await device.send({ method: 'POST', path: '/telemetry/temp', body: { c: 20 }, token: tokens!.accessToken });
  t.equal(res.code, '2.01');
  t.equal(h.backend.requests.at(-1)?.headers['x-forwarded-for'], '::1', 'the backend learns the IPv6 peer');
});

t.test('IPv6: a gateway on :: also answers IPv4 devices', async (t) => {
  const h = await startHarness(t, { config: { coapHost: '::' } });
  const secret = await h.provision('dual-sensor');
  const v4 = await DeviceClient.open('127.0.0.1', h.port);
  t.teardown(() => v4.close());
  const { answer } = await v4.login('dual-sensor', secret);
  t.equal(answer.code, '2.01', 'IPv4 device on a dual-stack socket');
  await h.assertStillServes(t);
});
