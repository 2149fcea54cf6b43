import t from 'tap';
import { createRouter, fillTemplate } from '../../gateway/src/bridge/router.ts';
import { DEFAULT_ROUTES, type RouteConfig } from '../../gateway/src/config/index.ts';

/** Uri-Path segments as a device sends them, written as a path for readability. */
const seg = (path: string): string[] => (path === '' ? [] : path.split('/').slice(1));

const route = (path: string, backendPath = '/x'): RouteConfig => ({ path, methods: ['GET'], scope: 's', backendPath, body: 'cbor-json' });

t.test('literal paths match exactly', async (t) => {
  const router = createRouter(DEFAULT_ROUTES);
  t.equal(router.match(seg('/config'))?.route.path, '/config');
  t.same(router.match(seg('/config'))?.params, {});
  for (const path of ['/config/', '/config/x', '/Config', '/conf', '/', '', '/x/config']) {
    t.equal(router.match(seg(path)), undefined, `${JSON.stringify(path)} does not match`);
  }
});

t.test('{name} matches exactly one non-empty segment', async (t) => {
  const router = createRouter(DEFAULT_ROUTES);
  t.same(router.match(seg('/telemetry/temp')), { route: DEFAULT_ROUTES[0], params: { name: 'temp' } });
  t.same(router.match(seg('/telemetry/temp room'))?.params, { name: 'temp room' }, 'the segment as it is');
  t.equal(router.match(seg('/telemetry')), undefined, 'missing segment');
  t.equal(router.match(seg('/telemetry/')), undefined, 'empty segment');
  t.equal(router.match(seg('/telemetry/a/b')), undefined, 'two segments');
  t.same(router.match(['telemetry', 'a/b'])?.params, { name: 'a/b' }, 'one segment holding a slash stays one segment');
  t.equal(router.match(['telemetry', '..']), undefined, '.. never matches a parameter');
  t.equal(router.match(['telemetry', '.']), undefined, '. never matches a parameter');
});

t.test('several parameters; the first matching route wins', async (t) => {
  const router = createRouter([
    route('/rooms/{room}/sensors/{sensor}', '/r/{room}/s/{sensor}'),
    route('/rooms/lobby/{what}'),
    route('/rooms/{room}/{what}'),
  ]);
  t.same(router.match(seg('/rooms/kitchen/sensors/t1'))?.params, { room: 'kitchen', sensor: 't1' });
  t.equal(router.match(seg('/rooms/lobby/temp'))?.route.path, '/rooms/lobby/{what}', 'config order decides');
  t.same(router.match(seg('/rooms/attic/temp')), { route: route('/rooms/{room}/{what}'), params: { room: 'attic', what: 'temp' } });
  t.equal(router.routes().length, 3);
});

t.test('fillTemplate percent-encodes every value as one path segment', async (t) => {
  const template = '/devices/{sub}/telemetry/{name}';
  const cases: [Record<string, string>, string][] = [
    [{ sub: 'sensor-1', name: 'temp' }, '/devices/sensor-1/telemetry/temp'],
    [{ sub: 'sensor 1', name: 'a/b' }, '/devices/sensor%201/telemetry/a%2Fb'],
    [{ sub: 's', name: 'a?b#c' }, '/devices/s/telemetry/a%3Fb%23c'],
    [{ sub: 's', name: '50%' }, '/devices/s/telemetry/50%25'],
    [{ sub: 's', name: 'ü€' }, '/devices/s/telemetry/%C3%BC%E2%82%AC'],
    [{ sub: 's', name: 'a&b=c;d' }, '/devices/s/telemetry/a%26b%3Dc%3Bd'],
    [{ sub: 's', name: '{name}' }, '/devices/s/telemetry/%7Bname%7D'],
  ];
  for (const [values, expected] of cases) t.equal(fillTemplate(template, values), expected, JSON.stringify(values));
  t.equal(fillTemplate('/devices/{sub}/{sub}', { sub: 'a' }), '/devices/a/a', 'a name used twice');
  t.equal(fillTemplate('/static/path', { sub: 'a' }), '/static/path', 'no placeholders');
});
