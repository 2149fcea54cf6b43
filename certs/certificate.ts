import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/** A private key and its certificate, both PEM. */
export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export type CertificateUsage = 'server' | 'client';

export interface AltNames {
  dns?: string[];
  ip?: string[];
}

export interface CreateCaOptions {
  commonName: string;
  validDays: number;
  /** Injectable clock; validity starts a few minutes before it. */
  now?: Date;
  /** Overrides the start derived from `now`. */
  notBefore?: Date;
}

export interface IssueCertificateOptions {
  ca: KeyAndCert;
  commonName: string;
  usage: CertificateUsage;
  altNames?: AltNames;
  /** Injectable clock; validity starts a few minutes before it. */
  now?: Date;
  /** Overrides the start derived from `now`. */
  notBefore?: Date;
  /** Overrides `validDays` when given; may lie in the past (expired certificates for tests). */
  notAfter?: Date;
  validDays?: number;
}

const RSA_MODULUS_BITS = 2048;
const DAY_MS = 24 * 60 * 60 * 1000;
// Backdated so a peer whose clock runs a little behind ours does not see "not yet valid".
const CLOCK_SKEW_MS = 5 * 60 * 1000;
// Apple platforms reject TLS server certificates valid for longer than 825 days.
const DEFAULT_LEAF_VALID_DAYS = 825;
const ORGANIZATION = 'coap-gateway development';

// RFC 5280 section 4.2.1.12: id-kp-serverAuth / id-kp-clientAuth.
const EXT_KEY_USAGE: Record<CertificateUsage, { serverAuth?: true; clientAuth?: true }> = {
  server: { serverAuth: true },
  client: { clientAuth: true },
};

/** Creates a self-signed certificate authority (RSA 2048, sha256). */
export function createCa(options: CreateCaOptions): KeyAndCert {
  const { commonName, validDays } = options;
  assertCommonName(commonName);
  assertValidDays(validDays);
  const notBefore = options.notBefore ?? skewedBack(options.now ?? new Date());
  const notAfter = new Date(notBefore.getTime() + validDays * DAY_MS);

  const { keyPem, privateKey, publicKey } = generateRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const subject = distinguishedName(commonName);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  // RFC 5280 section 4.2.1.9: basicConstraints must be critical in CA certificates.
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** Issues a TLS server or client certificate signed by `ca`. */
export function issueCertificate(options: IssueCertificateOptions): KeyAndCert {
  const { commonName, usage, altNames = {} } = options;
  assertCommonName(commonName);
  if (usage !== 'server' && usage !== 'client') {
    throw new TypeError(`usage must be 'server' or 'client', got ${String(usage)}`);
  }
  const notBefore = options.notBefore ?? skewedBack(options.now ?? new Date());
  let notAfter = options.notAfter;
  if (notAfter === undefined) {
    const validDays = options.validDays ?? DEFAULT_LEAF_VALID_DAYS;
    assertValidDays(validDays);
    notAfter = new Date(notBefore.getTime() + validDays * DAY_MS);
  }
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new TypeError('notAfter must be later than notBefore');
  }
  const { caKey, caCert } = parseCa(options.ca);

  const { keyPem, publicKey } = generateRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(distinguishedName(commonName));
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    // RSA key exchange (TLS 1.2) needs keyEncipherment on server keys; clients only sign.
    usage === 'server'
      ? { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, critical: true },
    { name: 'extKeyUsage', ...EXT_KEY_USAGE[usage] },
    ...subjectAltNameExtension(altNames),
    { name: 'subjectKeyIdentifier' },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

interface RsaKeyPair {
  keyPem: string;
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

// OpenSSL generates the key (milliseconds); forge only builds and signs the certificate.
function generateRsaKeyPair(): RsaKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: RSA_MODULUS_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

function parseCa(ca: KeyAndCert): { caKey: forge.pki.rsa.PrivateKey; caCert: forge.pki.Certificate } {
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(ca.certPem);
    caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  } catch (cause) {
    throw new TypeError('ca must hold an RSA key PEM and a certificate PEM', { cause });
  }
  const caPublic = caCert.publicKey as forge.pki.rsa.PublicKey;
  if (caPublic.n.compareTo(caKey.n) !== 0) {
    throw new TypeError('ca.keyPem does not belong to ca.certPem');
  }
  return { caKey, caCert };
}

function subjectAltNameExtension(altNames: AltNames): object[] {
  const dns = altNames.dns ?? [];
  const ip = altNames.ip ?? [];
  for (const address of ip) {
    if (isIP(address) === 0) throw new TypeError(`not an IP address: ${address}`);
  }
  if (dns.length === 0 && ip.length === 0) return [];
  // RFC 5280 section 4.2.1.6: GeneralName dNSName [2], iPAddress [7].
  return [
    {
      name: 'subjectAltName',
      altNames: [
        ...dns.map((value) => ({ type: 2, value })),
        ...ip.map((address) => ({ type: 7, ip: address })),
      ],
    },
  ];
}

function distinguishedName(commonName: string): forge.pki.CertificateField[] {
  return [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: ORGANIZATION },
  ];
}

// RFC 5280 section 4.1.2.2: positive, at most 20 octets. 16 random octets with the
// top bit cleared (positive) and a non-zero first octet (minimal DER encoding).
function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function skewedBack(now: Date): Date {
  return new Date(now.getTime() - CLOCK_SKEW_MS);
}

// RFC 5280 appendix A: ub-common-name is 64.
function assertCommonName(commonName: string): void {
  if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64) {
    throw new TypeError('commonName must be a non-empty string of at most 64 characters');
  }
}

function assertValidDays(validDays: number): void {
  if (!Number.isFinite(validDays) || validDays <= 0) {
    throw new TypeError(`validDays must be a positive number, got ${String(validDays)}`);
  }
}
