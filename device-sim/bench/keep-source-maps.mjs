// Preloaded (`node --import`) into a gateway run under --cpu-prof. tsx compiles each .ts file to
// one line of JavaScript, so V8's profile says `gateway/src/coap/endpoint.ts:1` for everything;
// at exit this writes the source maps tsx registered for the gateway's files next to the profile
// (`source-maps.json` in --cpu-prof-dir), and the bench's profile summary maps positions back to
// TypeScript lines. Plain JavaScript: it loads before tsx does.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { findSourceMap } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

const dirFlag = process.execArgv.indexOf('--cpu-prof-dir');
const profileDir = dirFlag === -1 ? undefined : process.execArgv[dirFlag + 1];
const gatewaySrc = fileURLToPath(new URL('../../gateway/src/', import.meta.url));

if (profileDir !== undefined && isMainThread) {
  process.once('exit', () => {
    const maps = {};
    for (const file of readdirSync(gatewaySrc, { recursive: true })) {
      if (!String(file).endsWith('.ts')) continue;
      const url = pathToFileURL(join(gatewaySrc, String(file))).href;
      const map = findSourceMap(url);
      if (map !== undefined) maps[url] = map.payload;
    }
    // V8 creates the directory only when it writes the profile, after this.
    mkdirSync(profileDir, { recursive: true });
    writeFileSync(join(profileDir, 'source-maps.json'), JSON.stringify(maps));
  });
}
