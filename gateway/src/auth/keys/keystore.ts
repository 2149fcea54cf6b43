import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { DEFAULTS, type SigningAlg } from '../../config/index.ts';
import { AdminError } from '../../errors.ts';
import { readJsonIfExists, writeFileAtomic, type PublishedKey } from '../../store/index.ts';

export type KeyState = 'active' | 'verifying' | 'retired';

/** What `keys.json` records of each key; private parts live in `<kid>.private.json`, mode 0600. */
export interface KeyMetadata {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  /** Set when a key stops signing: its last token expires (plus leeway) by then. */
  verifyUntil?: string;
  retiredAt?: string;
  publicJwk: JWK;
}

export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
}

export interface VerificationKey {
  alg: SigningAlg;
  publicKey: KeyObject;
  /** When it stops verifying (ms since epoch); Infinity while it signs. */
  verifyUntilMs: number;
}

export interface KeystoreOptions {
  dir: string;
  signingAlg: SigningAlg;
  /**
   * The longest a token signed now can live (access or refresh) plus the leeway. The gateway
   * records it in the keystore; the CLI, which does not know the gateway's flags, reads it back.
   */
  maxTokenLifetimeSec: number | undefined;
  nowMs: () => number;
}

const INDEX_FILE = 'keys.json';
const POLICY_FILE = 'policy.json';
/** Names this gateway (the holder of these private keys) among the fleet's published keys. */
const GATEWAY_ID_FILE = 'gateway-id';
const UNKNOWN_KID_RELOAD_COOLDOWN_MS = 1000;
/** New kids: 8 hex characters (4 bytes). Keys made before keep their 16. */
const KID_HEX_CHARS = 8;
// Used only before any gateway has recorded its policy: the default refresh TTL plus leeway.
const DEFAULT_MAX_TOKEN_LIFETIME_SEC = DEFAULTS.refreshTtlSec + DEFAULTS.leewaySec;

/**
 * The gateway's signing keys in the state directory. One key is active (signs); keys that
 * signed before a rotation keep verifying until their last token has expired, then retire.
 * Public keys are served as a JWKS; private keys never leave their 0600 files.
 */
export class Keystore {
  readonly #options: KeystoreOptions;
  readonly gatewayId: string;
  #keys: KeyMetadata[] = [];
  #verification = new Map<string, VerificationKey>();
  /** Other gateways' keys that may verify, from the store's change feed (`setFleetKeys`). */
  #fleet = new Map<string, VerificationKey & { published: PublishedKey }>();
  #signing: SigningKey | undefined;
  #unknownKidReload: Promise<void> | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #lastUnknownKidReloadMs = -Infinity;
  /** Called when a token's unknown kid made the keystore re-read its files (metrics). */
  onUnknownKidReload: (() => void) | undefined;
  /** Re-reads the fleet's published keys (the gateway sets it; a token may name a key just rotated elsewhere). */
  reloadFleet: (() => Promise<void>) | undefined;

  private constructor(options: KeystoreOptions, gatewayId: string) {
    this.#options = options;
    this.gatewayId = gatewayId;
  }

  /** Opens the keystore; creates the first key when `createIfEmpty` and none exists yet. */
  static async open(options: KeystoreOptions, createIfEmpty: boolean): Promise<Keystore> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    await chmod(options.dir, 0o700);
    const policyFile = join(options.dir, POLICY_FILE);
    const policy = (await readJsonIfExists(policyFile)) as { maxTokenLifetimeSec?: number } | undefined;
    if (options.maxTokenLifetimeSec !== undefined && policy?.maxTokenLifetimeSec !== options.maxTokenLifetimeSec) {
      await writeFileAtomic(policyFile, JSON.stringify({ maxTokenLifetimeSec: options.maxTokenLifetimeSec }), 0o600);
    }
    const idFile = join(options.dir, GATEWAY_ID_FILE);
    let gatewayId = (await readFile(idFile, 'utf8').catch(() => '')).trim();
    if (gatewayId === '') {
      gatewayId = randomBytes(8).toString('hex');
      await writeFileAtomic(idFile, gatewayId, 0o600);
    }
    const keystore = new Keystore({
      ...options,
      maxTokenLifetimeSec: options.maxTokenLifetimeSec ?? policy?.maxTokenLifetimeSec ?? DEFAULT_MAX_TOKEN_LIFETIME_SEC,
    }, gatewayId);
    await keystore.reload();
    if (createIfEmpty && keystore.#signing === undefined) await keystore.rotate(options.signingAlg);
    return keystore;
  }

  get dir(): string {
    return this.#options.dir;
  }

  /**
   * Re-reads the keystore from disk (after a CLI change). Reloads run one after another, so an
   * older read can never finish last and bring back keys that a newer one already saw go.
   */
  reload(): Promise<void> {
    const next = this.#reloading.then(() => this.#read(), () => this.#read());
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  async #read(): Promise<void> {
    const keys = ((await readJsonIfExists(join(this.#options.dir, INDEX_FILE))) as KeyMetadata[] | undefined) ?? [];
    const verification = new Map<string, VerificationKey>();
    let signing: SigningKey | undefined;
    for (const key of keys) {
      if (key.state === 'retired') continue;
      verification.set(key.kid, {
        alg: key.alg,
        publicKey: createPublicKey({ key: key.publicJwk, format: 'jwk' }),
        verifyUntilMs: key.verifyUntil !== undefined ? Date.parse(key.verifyUntil) : Infinity,
      });
      if (key.state === 'active') {
        const privateJwk = JSON.parse(await readFile(this.#privateFile(key.kid), 'utf8')) as JWK;
        signing = { kid: key.kid, alg: key.alg, privateKey: createPrivateKey({ key: privateJwk as never, format: 'jwk' }) };
      }
    }
    this.#keys = keys;
    this.#verification = verification;
    this.#signing = signing;
  }

  /**
   * A token names a kid we do not know: perhaps a key rotated by another process that the
   * watcher has not reported yet. Re-read the keystore, single-flight and at most once per
   * second, so a flood of unknown kids cannot turn into a reload storm.
   */
  async reloadForUnknownKid(kid: string | undefined): Promise<VerificationKey | undefined> {
    if (kid === undefined) return undefined;
    if (this.#unknownKidReload === undefined) {
      if (this.#options.nowMs() - this.#lastUnknownKidReloadMs < UNKNOWN_KID_RELOAD_COOLDOWN_MS) return undefined;
      this.#lastUnknownKidReloadMs = this.#options.nowMs();
      this.onUnknownKidReload?.();
      this.#unknownKidReload = Promise.all([this.reload(), this.reloadFleet?.()])
        .then(() => undefined)
        .finally(() => { this.#unknownKidReload = undefined; });
    }
    await this.#unknownKidReload.catch(() => undefined);
    return this.verificationKey(kid);
  }

  signingKey(): SigningKey {
    if (this.#signing === undefined) throw new AdminError('GW_ERR_ADMIN_STATE', 'the keystore has no active key');
    return this.#signing;
  }

  /** The key for `kid` if it may still verify at this moment. */
  verificationKey(kid: string | undefined): VerificationKey | undefined {
    if (kid === undefined) return undefined;
    const key = this.#verification.get(kid) ?? this.#fleet.get(kid);
    // Parsed once per reload: this runs for every request, cached tokens included.
    return key !== undefined && key.verifyUntilMs > this.#options.nowMs() ? key : undefined;
  }

  /** The verifier's algorithm allow-list: exactly the algorithms of keys that may verify. */
  algorithms(): SigningAlg[] {
    return [...new Set([...this.#verification.values(), ...this.#fleet.values()].map((k) => k.alg))];
  }

  /**
   * The fleet's published keys (every gateway's, from the store). Keys of other gateways that
   * are active or verifying verify here too; this gateway's own keys come from its files.
   */
  setFleetKeys(published: readonly PublishedKey[]): void {
    const fleet = new Map<string, VerificationKey & { published: PublishedKey }>();
    for (const key of published) {
      if (key.state === 'retired' || key.gateway === this.gatewayId || this.#keys.some((k) => k.kid === key.kid)) continue;
      try {
        fleet.set(key.kid, {
          alg: key.alg, publicKey: createPublicKey({ key: key.publicJwk, format: 'jwk' }), published: key,
          verifyUntilMs: key.verifyUntil !== undefined ? Date.parse(key.verifyUntil) : Infinity,
        });
      } catch {
        // A malformed entry in the store verifies nothing; the others still do.
      }
    }
    this.#fleet = fleet;
  }

  /** This gateway's keys as the fleet should see them (for the store). */
  published(): PublishedKey[] {
    return this.#keys.map(({ kid, alg, state, createdAt, verifyUntil, retiredAt, publicJwk }) => ({
      kid, alg, state, gateway: this.gatewayId, createdAt, publicJwk,
      ...(verifyUntil !== undefined ? { verifyUntil } : {}), ...(retiredAt !== undefined ? { retiredAt } : {}),
    }));
  }

  list(): readonly KeyMetadata[] {
    return this.#keys;
  }

  /** Every public key that may verify, this gateway's and the fleet's. */
  jwks(): { keys: JWK[] } {
    return {
      keys: [...this.#keys.filter((k) => k.state !== 'retired'), ...[...this.#fleet.values()].map((k) => k.published)]
        .map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' })),
    };
  }

  /** Makes a new active key; the previous active key keeps verifying what it signed. */
  async rotate(alg: SigningAlg): Promise<KeyMetadata> {
    await this.reload();
    const now = this.#options.nowMs();
    // Hex, not base64url: a kid starting with '-' reads as an option to `gateway keys retire`.
    // Four bytes of the thumbprint: every token carries its kid over the radio (a CWT as these
    // 4 bytes). A kid that any key held here or published by the fleet has already is drawn again.
    const taken = new Set([...this.#keys.map((k) => k.kid), ...this.#fleet.keys()]);
    let pair: { publicKey: KeyObject; privateKey: KeyObject };
    let publicJwk: JWK;
    let kid: string;
    do {
      pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
      publicJwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
      kid = Buffer.from(await calculateJwkThumbprint(publicJwk), 'base64url').toString('hex').slice(0, KID_HEX_CHARS);
    } while (taken.has(kid));
    const { privateKey } = pair;
    await writeFileAtomic(this.#privateFile(kid), JSON.stringify(privateKey.export({ format: 'jwk' })), 0o600);
    const verifyUntil = new Date(now + (this.#options.maxTokenLifetimeSec ?? DEFAULT_MAX_TOKEN_LIFETIME_SEC) * 1000).toISOString();
    const keys = this.#keys.map((k) => (k.state === 'active' ? { ...k, state: 'verifying' as const, verifyUntil } : k));
    const created: KeyMetadata = { kid, alg, state: 'active', createdAt: new Date(now).toISOString(), publicJwk };
    keys.push(created);
    await this.#save(keys);
    return created;
  }

  /** Retires a verifying key now (e.g. it leaked): its tokens are refused from then on. */
  async retire(kid: string): Promise<void> {
    await this.reload();
    const key = this.#keys.find((k) => k.kid === kid);
    if (key === undefined || key.state === 'retired') {
      throw new AdminError('GW_ERR_ADMIN_UNKNOWN_KEY', `no key with kid "${kid}" that is active or verifying`);
    }
    if (key.state === 'active') {
      throw new AdminError('GW_ERR_ADMIN_ONLY_ACTIVE_KEY',
        `"${kid}" is the active signing key; rotate first (gateway keys rotate), then retire it`);
    }
    await this.#save(this.#keys.map((k) => (k.kid === kid ? this.#retired(k) : k)));
  }

  /** Retires verifying keys whose last token has expired. Returns the kids retired. */
  async retireExpired(): Promise<string[]> {
    const now = this.#options.nowMs();
    const due = this.#keys.filter((k) => k.state === 'verifying' && k.verifyUntil !== undefined && Date.parse(k.verifyUntil) <= now);
    if (due.length === 0) return [];
    await this.reload();
    await this.#save(this.#keys.map((k) => (due.some((d) => d.kid === k.kid) ? this.#retired(k) : k)));
    return due.map((k) => k.kid);
  }

  #retired(key: KeyMetadata): KeyMetadata {
    return { ...key, state: 'retired', retiredAt: new Date(this.#options.nowMs()).toISOString() };
  }

  async #save(keys: KeyMetadata[]): Promise<void> {
    await writeFileAtomic(join(this.#options.dir, INDEX_FILE), JSON.stringify(keys, null, 2), 0o600);
    for (const key of keys) {
      if (key.state === 'retired') await unlink(this.#privateFile(key.kid)).catch(() => undefined);
    }
    await this.reload();
  }

  #privateFile(kid: string): string {
    return join(this.#options.dir, `${kid}.private.json`);
  }
}
