import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createCa, issueCertificate, type AltNames, type CertificateUsage, type KeyAndCert } from './certificate.ts';

export type DevPkiName = 'ca' | 'backend' | 'adminCa' | 'adminServer' | 'adminClient';

export interface KeyCertPaths {
  keyPath: string;
  certPath: string;
}

/** Where each dev PKI file lives; `ca` signs `backend`, `adminCa` signs `adminServer` and `adminClient`. */
export type DevPkiPaths = { dir: string } & Record<DevPkiName, KeyCertPaths>;

export interface DevPkiResult {
  paths: DevPkiPaths;
  /** Files created or replaced by this call, in creation order. */
  written: string[];
  /** Existing key files whose permissions were tightened to 0600. */
  tightened: string[];
  /** True when nothing was written or changed. */
  upToDate: boolean;
}

export interface MakeDevPkiOptions {
  /** Injectable clock, for renewal tests. */
  now?: Date;
}

type PlanEntry =
  | { name: DevPkiName; file: string; kind: 'ca'; commonName: string }
  | {
      name: DevPkiName;
      file: string;
      kind: 'leaf';
      issuer: DevPkiName;
      commonName: string;
      usage: CertificateUsage;
      altNames?: AltNames;
    };

const DAY_MS = 24 * 60 * 60 * 1000;
const RENEW_WITHIN_MS = DAY_MS;
const CA_VALID_DAYS = 3650;
const LEAF_VALID_DAYS = 825;
const KEY_FILE_MODE = 0o600;
const CERT_FILE_MODE = 0o644;
const DIR_MODE = 0o700;
const LOCAL_ALT_NAMES: AltNames = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] };

// Issuers come before what they sign, so a replaced CA forces its leaves to be reissued.
const PLAN: readonly PlanEntry[] = [
  { name: 'ca', file: 'ca', kind: 'ca', commonName: 'coap-gateway dev CA' },
  {
    name: 'backend',
    file: 'backend',
    kind: 'leaf',
    issuer: 'ca',
    commonName: 'localhost',
    usage: 'server',
    altNames: LOCAL_ALT_NAMES,
  },
  // A separate CA: a certificate for the demo backend must never open the admin API.
  { name: 'adminCa', file: 'admin-ca', kind: 'ca', commonName: 'coap-gateway admin CA' },
  {
    name: 'adminServer',
    file: 'admin-server',
    kind: 'leaf',
    issuer: 'adminCa',
    commonName: 'localhost',
    usage: 'server',
    altNames: LOCAL_ALT_NAMES,
  },
  {
    name: 'adminClient',
    file: 'admin-client',
    kind: 'leaf',
    issuer: 'adminCa',
    commonName: 'admin',
    usage: 'client',
  },
];

/** The file layout of the dev PKI in `dir`, without touching the disk. */
export function devPkiPaths(dir: string): DevPkiPaths {
  const absoluteDir = resolve(dir);
  const entries = PLAN.map((entry) => [
    entry.name,
    {
      keyPath: join(absoluteDir, `${entry.file}.key.pem`),
      certPath: join(absoluteDir, `${entry.file}.cert.pem`),
    },
  ]);
  return { dir: absoluteDir, ...Object.fromEntries(entries) } as DevPkiPaths;
}

/**
 * Creates whatever part of the dev PKI in `dir` is missing, expiring within a day,
 * unreadable, or no longer signed by its CA. Leaves everything else untouched.
 */
export function makeDevPki(dir: string, options: MakeDevPkiOptions = {}): DevPkiResult {
  const now = options.now ?? new Date();
  const paths = devPkiPaths(dir);
  mkdirSync(paths.dir, { recursive: true, mode: DIR_MODE });

  const current = new Map<DevPkiName, KeyAndCert>();
  const written: string[] = [];
  const tightened: string[] = [];
  for (const entry of PLAN) {
    const { keyPath, certPath } = paths[entry.name];
    const issuer = entry.kind === 'leaf' ? current.get(entry.issuer) : undefined;
    const existing = loadIfUsable(paths[entry.name], issuer, now);
    if (existing !== undefined) {
      if (tightenKeyMode(keyPath)) tightened.push(keyPath);
      current.set(entry.name, existing);
      continue;
    }
    const fresh = createEntry(entry, current, now);
    writeAtomic(keyPath, fresh.keyPem, KEY_FILE_MODE);
    writeAtomic(certPath, fresh.certPem, CERT_FILE_MODE);
    written.push(keyPath, certPath);
    current.set(entry.name, fresh);
  }
  return { paths, written, tightened, upToDate: written.length === 0 && tightened.length === 0 };
}

function createEntry(entry: PlanEntry, current: Map<DevPkiName, KeyAndCert>, now: Date): KeyAndCert {
  if (entry.kind === 'ca') {
    return createCa({ commonName: entry.commonName, validDays: CA_VALID_DAYS, now });
  }
  const ca = current.get(entry.issuer);
  if (ca === undefined) {
    throw new TypeError(`dev PKI plan lists ${entry.name} before its issuer ${entry.issuer}`);
  }
  return issueCertificate({
    ca,
    commonName: entry.commonName,
    usage: entry.usage,
    ...(entry.altNames ? { altNames: entry.altNames } : {}),
    now,
    validDays: LEAF_VALID_DAYS,
  });
}

/**
 * Returns the pair when it can stay: key matches certificate, valid for more than a day,
 * and signed by `issuer` (or self-signed when `issuer` is undefined).
 */
function loadIfUsable(paths: KeyCertPaths, issuer: KeyAndCert | undefined, now: Date): KeyAndCert | undefined {
  if (!existsSync(paths.keyPath) || !existsSync(paths.certPath)) return undefined;
  try {
    const keyPem = readFileSync(paths.keyPath, 'utf8');
    const certPem = readFileSync(paths.certPath, 'utf8');
    const cert = new X509Certificate(certPem);
    const issuerCert = issuer === undefined ? cert : new X509Certificate(issuer.certPem);
    const usable =
      cert.checkPrivateKey(createPrivateKey(keyPem)) &&
      Date.parse(cert.validFrom) <= now.getTime() &&
      Date.parse(cert.validTo) - now.getTime() > RENEW_WITHIN_MS &&
      cert.checkIssued(issuerCert) &&
      cert.verify(issuerCert.publicKey);
    return usable ? { keyPem, certPem } : undefined;
  } catch {
    // Unparseable files are generated output, not user data: replace them.
    return undefined;
  }
}

function tightenKeyMode(keyPath: string): boolean {
  // Windows reports synthetic modes that chmod cannot narrow; checking there would never settle.
  if (process.platform === 'win32') return false;
  if ((statSync(keyPath).mode & 0o077) === 0) return false;
  chmodSync(keyPath, KEY_FILE_MODE);
  return true;
}

// Write-then-rename so an interrupted run never leaves a half-written PEM behind,
// and a key file is never readable by others, not even briefly.
function writeAtomic(path: string, contents: string, mode: number): void {
  const tempPath = `${path}.${process.pid}.tmp`;
  rmSync(tempPath, { force: true });
  writeFileSync(tempPath, contents, { mode, flag: 'wx' });
  renameSync(tempPath, path);
}
