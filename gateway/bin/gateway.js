#!/usr/bin/env node
// Runs the TypeScript sources. esbuild bundles them (packages stay external) into gateway/.build,
// one file per distinct build, written atomically; the process then runs plain JavaScript. A
// TypeScript loader (tsx) instead costs every gateway about 35 MB of RSS for its loader thread
// and transformed sources (measured with 100,000 devices: 169 MB with tsx, 138 MB bundled).
// The bundle keeps function names but carries no source map: enabling source maps makes Node parse
// those of every dependency too (another 23 MB). GATEWAY_LOADER=tsx runs through tsx instead, as
// the tests do, for TypeScript lines in stack traces (the bench's CPU profiles use it); so does a
// checkout where gateway/.build cannot be written.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const entry = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const buildDir = fileURLToPath(new URL('../.build/', import.meta.url));

async function bundled() {
  if (process.env.GATEWAY_LOADER === 'tsx') return undefined;
  try {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20',
      packages: 'external', write: false, logLevel: 'silent',
    });
    const code = result.outputFiles[0].contents;
    const name = `main-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`;
    const file = join(buildDir, name);
    if (!existsSync(file)) {
      mkdirSync(buildDir, { recursive: true });
      const partial = `${file}.${process.pid}.partial`;
      writeFileSync(partial, code);
      renameSync(partial, file);
      // Earlier builds: a process running one has loaded it already.
      for (const old of readdirSync(buildDir)) if (old !== name && old.endsWith('.mjs')) rmSync(join(buildDir, old), { force: true });
    }
    return file;
  } catch {
    return undefined;
  }
}

const file = await bundled();
if (file !== undefined) {
  await import(pathToFileURL(file).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
