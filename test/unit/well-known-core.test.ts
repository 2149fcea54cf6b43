import t from 'tap';
import { DEFAULT_ROUTES, type RouteConfig } from '../../gateway/src/config/index.ts';
import { createWellKnownCore } from '../../gateway/src/well-known-core.ts';

// RFC 6690: the links written out here rather than built from the routes, so a changed
// attribute, order or quoting fails this test.
const AUTH = '</auth>;rt="gw.auth";ct=60;title="POST device login"';
const REFRESH = '</auth/refresh>;rt="gw.auth.refresh";ct=60;title="POST token refresh"';
const NONCE = '</auth/nonce>;rt="gw.auth.nonce";ct=60;title="POST login nonce"';
const CONFIG = '</config>;rt="gw.bridge";ct=60;title="GET /config"';

const route = (path: string, extra: Partial<RouteConfig> = {}): RouteConfig =>
  ({ path, methods: ['GET'], scope: 'secret:scope', backendPath: '/x', body: 'cbor-json', ...extra });

const links = (payload: Buffer): string[] => (payload.length === 0 ? [] : payload.toString('utf8').split(','));

t.test('no query: the gateway resources and the concrete routes, templated routes left out', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.same(links(core([])), [AUTH, REFRESH, NONCE, CONFIG]);
  t.notMatch(core([]).toString(), /telemetry/, '/telemetry/{name} is no concrete resource; /telemetry answers 4.04');
  t.notMatch(core([]).toString(), /config:read/, 'scopes stay out of the listing');
});

t.test('a route with a parameter anywhere is left out; literal segments with braces inside are concrete', async (t) => {
  const core = createWellKnownCore([route('/rooms/{room}/temp'), route('/a{b}'), route('/status')]);
  t.same(links(core([])).slice(3).map((l) => /^<([^>]*)>/.exec(l)?.[1]), ['/a%7Bb%7D', '/status']);
});

t.test('pass-through routes carry no ct; several methods in the title; link syntax stays intact', async (t) => {
  const core = createWellKnownCore([
    route('/raw', { body: 'pass-through', methods: ['GET', 'PUT'] }),
    route('/odd,"name"'),
    route('/raw', { methods: ['DELETE'] }),
  ]);
  t.same(links(core([])).slice(3), [
    '</raw>;rt="gw.bridge";title="GET PUT /raw"',
    '</odd%2C%22name%22>;rt="gw.bridge";ct=60;title="GET /odd%2C%22name%22"',
  ], 'target percent-encoded, also in the title (no bare , or "), the unreachable second /raw not listed');
});

t.test('filter on rt: exact, and a trailing * matches a prefix (RFC 6690 section 4.1)', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.same(links(core(['rt=gw.auth'])), [AUTH], 'exact: not gw.auth.refresh nor gw.auth.nonce');
  t.same(links(core(['rt=gw.auth.nonce'])), [NONCE]);
  t.same(links(core(['rt=gw.auth*'])), [AUTH, REFRESH, NONCE]);
  t.same(links(core(['rt=gw.bridge'])), [CONFIG]);
  t.same(links(core(['rt=*'])), [AUTH, REFRESH, NONCE, CONFIG], '* alone: every link with an rt');
});

t.test('filter on href matches the link target', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.same(links(core(['href=/auth'])), [AUTH]);
  t.same(links(core(['href=/auth/nonce'])), [NONCE]);
  t.same(links(core(['href=/auth*'])), [AUTH, REFRESH, NONCE]);
  t.same(links(core(['href=/config'])), [CONFIG]);
  t.same(links(core(['href=/conf'])), [], 'no prefix match without *');
});

t.test('filter on ct and on any other attribute', async (t) => {
  const core = createWellKnownCore([...DEFAULT_ROUTES, route('/raw', { body: 'pass-through' })]);
  t.equal(links(core(['ct=60'])).length, 4, 'the pass-through route has no ct');
  t.same(links(core(['ct=40'])), []);
  t.same(links(core(['title=GET*'])), [CONFIG, '</raw>;rt="gw.bridge";title="GET /raw"']);
  t.same(links(core(['title=/config'])), [], 'title is one value, not a list: no item match');
  t.same(links(core(['if=sensor'])), [], 'an attribute no link has');
});

t.test('attribute names are case-insensitive; values are not', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.same(links(core(['RT=gw.bridge'])), [CONFIG]);
  t.same(links(core(['rt=GW.BRIDGE'])), []);
});

t.test('only the first query option filters; one that is no filter keeps every link', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.same(links(core(['rt=gw.bridge', 'href=/auth'])), [CONFIG]);
  t.same(links(core(['verbose', 'rt=gw.bridge'])), [AUTH, REFRESH, NONCE, CONFIG], 'no = in the first option');
  t.same(links(core(['=gw.bridge'])), [AUTH, REFRESH, NONCE, CONFIG], 'no name');
});

t.test('no matching link: an empty payload', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  const empty = core(['rt=nothing']);
  t.ok(Buffer.isBuffer(empty));
  t.equal(empty.length, 0);
});

t.test('the unfiltered payload is built once, not per request', async (t) => {
  const core = createWellKnownCore(DEFAULT_ROUTES);
  t.equal(core([]), core([]), 'the same Buffer');
  t.equal(core(['rt=gw*']), core([]), 'a filter keeping every link returns it too');
});
