/**
 * The `sealed` KBS store: wraps another store (fs by default, or postgres) and keeps every value
 * envelope-encrypted at rest with the AWS Encryption SDK (keyrings in `keyrings.ts`). The backing
 * store only ever sees Encryption SDK messages; keys, namespaces and expiry stay visible to it (it
 * needs them to look entries up and expire them).
 *
 * Each message's encryption context binds it to its place: the namespace, the key, and the expiry
 * (when there is one). The SDK authenticates the context with the message, so
 * - a value copied or moved to another key or namespace decrypts, but to the wrong context:
 *   ERR_KBS_STORE_CORRUPT;
 * - a backing store whose expiry was pushed back (the fs header is not authenticated) still
 *   returns nothing once the sealed expiry has passed;
 * - any changed byte fails authentication: ERR_KBS_STORE_CORRUPT, with one fixed message (STYLE §6).
 *
 * Algorithm suite: AES-256-GCM with HKDF-SHA512 key commitment and no ECDSA signature. Key
 * commitment is required both ways (`REQUIRE_ENCRYPT_REQUIRE_DECRYPT`). The signature would only
 * stop a party that can decrypt from forging entries; here the writer and the reader are the same
 * KBS holding the same key, so it would cost a P-384 signing per write and buy nothing.
 */
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  type EncryptionContext,
} from '@aws-crypto/client-node'
import {
  assertPutOptions,
  assertStoreKey,
  assertStoreValue,
  isExpired,
  type KbsStore,
  type PutOptions,
  type StoreNamespace,
} from '../../../lib/kbs/store.js'
import { CofferError } from '../../../lib/util/errors.js'
import type { SealingKeyring } from './keyrings.js'

/** Encryption context keys (the `aws-crypto-` prefix is the SDK's own, so ours is distinct). */
export const CONTEXT_NAMESPACE = 'coffer-kbs-namespace'
export const CONTEXT_KEY = 'coffer-kbs-key'
export const CONTEXT_EXPIRES_AT = 'coffer-kbs-expires-at'

const SUITE = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY
/** One wrapped data key per message: a message carrying more was not written by this store. */
const client = buildClient({
  commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
  maxEncryptedDataKeys: 1,
})

export interface SealedStoreOptions {
  /** The store that holds the ciphertext; closed by `close()`. */
  inner: KbsStore
  keyring: SealingKeyring
}

export function createSealedStore(o: SealedStoreOptions): KbsStore {
  return new SealedStore(o.inner, o.keyring)
}

class SealedStore implements KbsStore {
  private closed = false

  constructor(
    private readonly inner: KbsStore,
    private readonly sealing: SealingKeyring,
  ) {}

  async get(ns: StoreNamespace, key: string): Promise<Uint8Array | undefined> {
    this.check(ns, key)
    const sealed = await this.inner.get(ns, key)
    if (!sealed) return undefined
    let opened
    try {
      opened = await this.sealing.run(() => client.decrypt(this.sealing.keyring, sealed))
    } catch (err) {
      if (err instanceof CofferError) throw err
      throw new CofferError('ERR_KBS_STORE_CORRUPT', 'kbs store entry failed authentication')
    }
    const context = opened.messageHeader.encryptionContext
    if (context[CONTEXT_NAMESPACE] !== ns || context[CONTEXT_KEY] !== key) {
      throw new CofferError('ERR_KBS_STORE_CORRUPT', `kbs store entry ${key} was sealed for another key`)
    }
    const expiresAt = context[CONTEXT_EXPIRES_AT]
    if (expiresAt !== undefined) {
      if (!/^-?\d{1,16}$/.test(expiresAt))
        throw new CofferError('ERR_KBS_STORE_CORRUPT', 'kbs store entry expiry')
      if (isExpired(Number(expiresAt), Date.now())) return undefined
    }
    return opened.plaintext
  }

  async put(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): Promise<void> {
    const sealed = await this.seal(ns, key, value, options)
    await this.inner.put(ns, key, sealed, options)
  }

  async putIfAbsent(
    ns: StoreNamespace,
    key: string,
    value: Uint8Array,
    options?: PutOptions,
  ): Promise<boolean> {
    const sealed = await this.seal(ns, key, value, options)
    return this.inner.putIfAbsent(ns, key, sealed, options)
  }

  async delete(ns: StoreNamespace, key: string): Promise<boolean> {
    this.check(ns, key)
    return this.inner.delete(ns, key)
  }

  async list(ns: StoreNamespace): Promise<string[]> {
    this.assertOpen()
    return this.inner.list(ns)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.inner.close()
  }

  private async seal(
    ns: StoreNamespace,
    key: string,
    value: Uint8Array,
    options?: PutOptions,
  ): Promise<Buffer> {
    this.check(ns, key)
    assertStoreValue(value)
    assertPutOptions(options)
    const encryptionContext: EncryptionContext = { [CONTEXT_NAMESPACE]: ns, [CONTEXT_KEY]: key }
    if (options?.expiresAt !== undefined) encryptionContext[CONTEXT_EXPIRES_AT] = String(options.expiresAt)
    try {
      const { result } = await this.sealing.run(() =>
        client.encrypt(this.sealing.keyring, value, { encryptionContext, suiteId: SUITE }),
      )
      return result
    } catch (err) {
      if (err instanceof CofferError) throw err
      throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', 'kbs store entry could not be sealed', {
        cause: err,
      })
    }
  }

  private check(ns: StoreNamespace, key: string): void {
    this.assertOpen()
    assertStoreKey(ns, key)
  }

  private assertOpen(): void {
    if (this.closed) throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', 'kbs store is closed')
  }
}
