import { readFileSync } from 'node:fs';
import t from 'tap';
import { SERVE_FLAGS } from '../../gateway/src/cli/serve-flags.ts';
import {
  CONFIG_KEYS, DEFAULTS, DEFAULT_ROUTES, REDIS_STORE_DEFAULTS, SETTING_SPECS, type SettingName,
} from '../../gateway/src/config/index.ts';

// The operators' table of `serve` settings must say what the schema says: every setting, its
// flag, and its default. The table is read from this file, under this heading.
const SETTINGS_DOC = new URL('../../gateway/docs/operator-guide.md', import.meta.url);
const SETTINGS_HEADING = '### `gateway serve`';

const doc = readFileSync(SETTINGS_DOC, 'utf8');

interface Row {
  flags: string[];
  keys: string[];
  /** The backticked defaults, or the cell's text when it has none ("(required)", "off", ""). */
  defaults: string[];
  text: string;
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]*)`/g)].map((m) => m[1]!);

/** The rows of the first table under the heading: `| flag | config key | default | meaning |`. */
function settingsTable(): Row[] {
  const start = doc.indexOf(`\n${SETTINGS_HEADING}\n`);
  if (start < 0) throw new Error(`${SETTINGS_DOC.pathname} has no heading ${SETTINGS_HEADING}`);
  const lines = doc.slice(start).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const table = lines.slice(first, lines.findIndex((line, i) => i > first && !line.startsWith('|')));
  return table.slice(2).map((line) => {
    const [flag = '', key = '', value = ''] = line.split('|').slice(1, -1).map((cell) => cell.trim());
    const defaults = ticked(value);
    return {
      flags: ticked(flag).flatMap((text) => text.split(' ')[0]!.split('/')),
      keys: ticked(key),
      defaults: defaults.length > 0 ? defaults : [value],
      text: line,
    };
  });
}

/** `certs/out/admin-server.*` stands for every file name it matches. */
const matches = (documented: string, value: string): boolean =>
  new RegExp(`^${documented.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(value);

const rows = settingsTable();

t.test('the settings table lists every setting once, and only settings', async (t) => {
  t.ok(rows.length > 10, `${rows.length} rows`);
  const documented = rows.flatMap((row) => row.keys);
  t.same([...documented].sort(), [...CONFIG_KEYS].sort(), 'every config key, and no other');
  t.equal(new Set(documented).size, documented.length, 'each in one row');
});

t.test('each row gives its setting\'s default as the schema has it', async (t) => {
  for (const row of rows.filter((r) => r.keys.length > 0)) {
    const keys = row.keys as SettingName[];
    const values = keys.map((key) => (Object.hasOwn(DEFAULTS, key) ? DEFAULTS[key as keyof typeof DEFAULTS] : undefined));
    if (keys.includes('routes')) {
      t.same(row.defaults, ['see [Routes](#routes)'], 'routes: the default routes are shown in the Routes section');
      continue;
    }
    keys.forEach((key, i) => {
      const value = values[i];
      if (value === undefined) {
        const said = SETTING_SPECS[key].optional === true ? ['off', ''] : ['(required)'];
        t.ok(said.includes(row.defaults[0]!), `${key}: no default, documented as "${row.defaults[0]}"`);
        return;
      }
      const text = String(value);
      const documented = row.defaults.length === keys.length ? [row.defaults[i]!] : row.defaults;
      t.ok(documented.some((d) => matches(d, text)), `${key}: default ${text}, documented as ${documented.join(', ')}`);
    });
    for (const documented of row.defaults.filter((d) => values.some((v) => v !== undefined))) {
      t.ok(values.some((v) => v !== undefined && matches(documented, String(v))), `${row.keys.join(', ')}: "${documented}" is a default`);
    }
  }
});

t.test('each flag in the table sets the setting beside it, and every serve flag is there', async (t) => {
  const bySetting = new Map<string, string>(SERVE_FLAGS.map(({ flag, setting }) => [setting, flag]));
  const documented: string[] = [];
  for (const row of rows.filter((r) => r.flags.length > 0 && r.keys.length > 0)) {
    t.equal(row.flags.length, row.keys.length, `${row.flags.join('/')}: one flag per key`);
    row.keys.forEach((key, i) => t.equal(bySetting.get(key), row.flags[i], `${row.flags[i]} sets ${key}`));
    documented.push(...row.flags);
  }
  t.same(documented.sort(), SERVE_FLAGS.map((f) => f.flag).sort(), 'every serve flag');
});

t.test('the default routes and the Redis store defaults shown beside the table are the schema\'s', async (t) => {
  const routes = /With no `routes` configured these two apply:\s*```json\n([\s\S]*?)```/.exec(doc)?.[1];
  t.ok(routes, 'the default routes are shown');
  t.same(JSON.parse(routes ?? '{}').routes, DEFAULT_ROUTES);
  const redis = /`(\{ "kind": "redis", [^`]*\})`/.exec(doc)?.[1];
  t.ok(redis, 'the store object is shown with its defaults');
  const { kind, url: _url, ...defaults } = JSON.parse(redis ?? '{}') as Record<string, unknown>;
  t.equal(kind, 'redis');
  t.same(defaults, REDIS_STORE_DEFAULTS);
});
