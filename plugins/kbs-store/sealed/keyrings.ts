/**
 * The two keyrings a `sealed` store can use (AWS Encryption SDK for JavaScript, v5):
 *
 * - raw AES (default): `RawAesKeyringNode` over a 32-byte master key file, provider namespace
 *   `coffer` and key name `kbs-store-master-key`. Both names are written into every entry (the
 *   SDK's key provider info) and must match on decryption, so they are fixed: renaming them would
 *   strand every existing entry.
 * - AWS KMS: `KmsKeyringNode` with the configured key ARN as generator. Its KMS client has
 *   connection and request timeouts, and remembers the last KMS failure of the current operation
 *   (`kmsFailure`), so the store can tell "KMS unreachable" (ERR_KBS_STORE_UNAVAILABLE) from "entry
 *   tampered" (ERR_KBS_STORE_CORRUPT): the SDK folds both into one generic error.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import {
  KMS,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  type KeyringNode,
} from '@aws-crypto/client-node'
import { CofferError } from '../../../lib/util/errors.js'
import { readMasterKeyFile } from './master-key.js'

export const RAW_AES_KEY_NAMESPACE = 'coffer'
export const RAW_AES_KEY_NAME = 'kbs-store-master-key'

const KMS_CONNECT_TIMEOUT_MS = 5_000
const KMS_REQUEST_TIMEOUT_MS = 15_000
const KMS_MAX_ATTEMPTS = 2

export interface SealingKeyring {
  readonly kind: 'raw-aes' | 'kms'
  readonly keyring: KeyringNode
  /**
   * Runs one encrypt or decrypt. If it fails after a KMS call failed, the failure is
   * ERR_KBS_STORE_UNAVAILABLE naming the KMS error; any other failure is rethrown as it is.
   */
  run<T>(work: () => Promise<T>): Promise<T>
}

export async function rawAesKeyring(masterKeyFile: string): Promise<SealingKeyring> {
  const keyring = new RawAesKeyringNode({
    keyNamespace: RAW_AES_KEY_NAMESPACE,
    keyName: RAW_AES_KEY_NAME,
    unencryptedMasterKey: await readMasterKeyFile(masterKeyFile),
    wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
  })
  return { kind: 'raw-aes', keyring, run: (work) => work() }
}

export interface KmsKeyringSettings {
  /** `arn:aws:kms:<region>:<account>:key/<id>` (or an alias ARN). */
  keyArn: string
  /** Overrides the region in the ARN (rarely needed). */
  region?: string
  /** A KMS-compatible endpoint (LocalStack, a VPC endpoint); default: AWS's for the region. */
  endpoint?: string
}

export function kmsKeyring(s: KmsKeyringSettings): SealingKeyring {
  const failures = new AsyncLocalStorage<{ failure?: unknown }>()
  const clients = new Map<string, KMS>()
  const clientFor = (arnRegion: string): KMS => {
    const region = s.region ?? arnRegion
    let client = clients.get(region)
    if (!client) {
      client = new KMS({
        region,
        ...(s.endpoint ? { endpoint: s.endpoint } : {}),
        maxAttempts: KMS_MAX_ATTEMPTS,
        requestHandler: { connectionTimeout: KMS_CONNECT_TIMEOUT_MS, requestTimeout: KMS_REQUEST_TIMEOUT_MS },
      })
      clients.set(region, client)
    }
    return client
  }
  /** Records a KMS call's failure for `track`, then lets the keyring see it as usual. */
  const recorded = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (err) {
      const scope = failures.getStore()
      if (scope) scope.failure = err
      throw err
    }
  }
  const keyring = new KmsKeyringNode({
    generatorKeyId: s.keyArn,
    clientProvider: (region: string) => {
      const client = clientFor(region)
      return {
        decrypt: (args) => recorded(() => client.decrypt(args)),
        encrypt: (args) => recorded(() => client.encrypt(args)),
        generateDataKey: (args) => recorded(() => client.generateDataKey(args)),
      }
    },
  })
  return {
    kind: 'kms',
    keyring,
    run: (work) => {
      const scope: { failure?: unknown } = {}
      return failures.run(scope, async () => {
        try {
          return await work()
        } catch (err) {
          if (scope.failure === undefined) throw err
          throw new CofferError(
            'ERR_KBS_STORE_UNAVAILABLE',
            `AWS KMS call failed: ${describe(scope.failure)}`,
            {
              cause: scope.failure,
            },
          )
        }
      })
    },
  }
}

/** `<name>: <message>` of an AWS SDK error (neither carries key material). */
function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`
  return String(err)
}
