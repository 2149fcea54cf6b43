import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

// The simulator is a device: it knows the gateway only by its wire contract (gateway/src/wire)
// and its CLI, so a change behind the gateway's surface cannot make the simulator agree with it
// by accident. The bench may measure a part of the gateway on purpose, but only through that
// concern folder's public index.ts, never a file behind it. TypeScript's own pre-processor reads
// the imports (static, re-exports and dynamic import()), so no spelling of one slips past.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GATEWAY_SRC = join(ROOT, 'gateway', 'src');

interface Rule {
  /** Folder whose files the rule covers. */
  folder: string;
  /** What the files may import from gateway/src, as a path below it. */
  allows: (inGateway: string) => boolean;
  says: string;
}

const RULES: readonly Rule[] = [
  { folder: 'device-sim/src', allows: (p) => p.startsWith('wire/'), says: 'device-sim/src imports only gateway/src/wire' },
  {
    folder: 'device-sim/bench', allows: (p) => /^[a-z0-9-]+\/index\.ts$/.test(p),
    says: 'device-sim/bench imports only the index.ts of a gateway/src folder',
  },
];

/** The gateway/src paths (relative to it, with '/') that `source`, the text of `file`, imports. */
function gatewayImports(file: string, source: string): string[] {
  const { importedFiles } = ts.preProcessFile(source, true, true);
  return importedFiles
    .map((ref) => ref.fileName)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => relative(GATEWAY_SRC, resolve(dirname(file), specifier)))
    .filter((inGateway) => !inGateway.startsWith('..') && !inGateway.startsWith(sep) && inGateway !== '')
    .map((inGateway) => inGateway.split(sep).join('/'));
}

async function sourceFiles(folder: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, folder), { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && /\.(?:ts|mts|js|mjs)$/.test(e.name)).map((e) => join(e.parentPath, e.name));
}

/** Every import of `rule.folder`'s files into gateway/src that the rule refuses, as 'file -> target'. */
async function violations(rule: Rule): Promise<{ files: number; refused: string[] }> {
  const files = await sourceFiles(rule.folder);
  const refused: string[] = [];
  for (const file of files) {
    for (const target of gatewayImports(file, await readFile(file, 'utf8'))) {
      if (!rule.allows(target)) refused.push(`${relative(ROOT, file)} -> gateway/src/${target}`);
    }
  }
  return { files: files.length, refused };
}

t.test('the checker sees every form of import, and only imports into gateway/src', async (t) => {
  const file = join(ROOT, 'device-sim', 'bench', 'example.ts');
  const source = [
    "import { a } from '../../gateway/src/store/ports.ts';",
    "import type { B } from '../../gateway/src/store/index.ts';",
    "export { c } from '../../gateway/src/auth/verify/claims.ts';",
    "const d = await import('../../gateway/src/coap/index.ts');",
    "import { e } from '../src/fleet.ts';",
    "import { f } from 'jose';",
    "// import { g } from '../../gateway/src/in-a-comment.ts';",
  ].join('\n');
  t.same(gatewayImports(file, source), ['store/ports.ts', 'store/index.ts', 'auth/verify/claims.ts', 'coap/index.ts']);
  const bench = RULES[1]!;
  t.same(['store/ports.ts', 'store/index.ts', 'store/file/index.ts', 'gateway.ts', 'auth/index.ts'].filter(bench.allows),
    ['store/index.ts', 'auth/index.ts'], 'a folder index.ts only: not a file behind it, not a sub-folder\'s index, not a top-level file');
  const simulator = RULES[0]!;
  t.same(['wire/index.ts', 'wire/cbor.ts', 'store/index.ts'].filter(simulator.allows), ['wire/index.ts', 'wire/cbor.ts']);
});

for (const rule of RULES) {
  t.test(rule.says, async (t) => {
    const { files, refused } = await violations(rule);
    t.ok(files > 0, `${files} files read under ${rule.folder}`);
    t.same(refused, [], rule.says);
  });
}
