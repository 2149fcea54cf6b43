import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { JWK } from 'jose';

// Device key files made the ways operators and firmware engineers make them.

const run = promisify(execFile);

/** A key pair made by openssl, as a firmware engineer would (the operator guide's commands). */
export async function opensslKey(dir: string, name: string, alg: 'ES256' | 'EdDSA'): Promise<{ privateFile: string; publicFile: string }> {
  const key = join(dir, `${name}.key.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  if (alg === 'ES256') {
    await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    await run('openssl', ['ec', '-in', key, '-pubout', '-out', pub]);
  } else {
    await run('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
    await run('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  }
  return { privateFile: key, publicFile: pub };
}

/** A public JWK file made with node:crypto (as a device's firmware might export it). */
export async function jwkFile(dir: string, name: string, extra: Record<string, unknown> = {}): Promise<{ file: string; jwk: JWK }> {
  const jwk = { ...generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }), ...extra } as JWK;
  const file = join(dir, `${name}.jwk`);
  await writeFile(file, JSON.stringify(jwk));
  return { file, jwk };
}
