import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { makeDevPki } from './pki.ts';

const DEFAULT_OUT_DIR = 'certs/out';

/** Writes the dev PKI into `argv[0]` (default `certs/out`); returns the process exit code. */
export function main(argv: readonly string[]): number {
  if (argv.length > 1) {
    console.error('usage: make-certs.ts [out-dir]');
    return 1;
  }
  const outDir = argv[0] ?? DEFAULT_OUT_DIR;
  try {
    const result = makeDevPki(outDir);
    if (result.upToDate) {
      console.log(`certs: up to date in ${result.paths.dir}`);
      return 0;
    }
    for (const path of result.written) console.log(`certs: wrote ${path}`);
    for (const path of result.tightened) console.log(`certs: set mode 0600 on ${path}`);
    return 0;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    console.error(`certs: failed to make the dev PKI in ${outDir}: ${reason}`);
    return 1;
  }
}

// Run only as the entry point, so importing this module never writes files.
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = main(process.argv.slice(2));
}
