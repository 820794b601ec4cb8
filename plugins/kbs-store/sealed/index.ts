/**
 * Registration of the `sealed` KBS store (STYLE §2): data only, importing this registers nothing.
 * A plugin never imports another plugin, so the caller (`plugins/kbs-stores.ts`) opens the inner
 * store named in the settings and hands it over.
 */
import { z } from 'zod'
import { STORE_POINT, type KbsStore } from '../../../lib/kbs/store.js'
import { parseStoreSettings } from '../../../lib/kbs/store-settings.js'
import type { Registration } from '../../../lib/util/registry.js'
import { kmsKeyring, rawAesKeyring, type SealingKeyring } from './keyrings.js'
import { createSealedStore } from './sealed-store.js'

export { createSealedStore, type SealedStoreOptions } from './sealed-store.js'
export {
  kmsKeyring,
  rawAesKeyring,
  RAW_AES_KEY_NAME,
  RAW_AES_KEY_NAMESPACE,
  type SealingKeyring,
} from './keyrings.js'
export { generateMasterKeyFile, MASTER_KEY_BYTES } from './master-key.js'

/** A KMS key or alias ARN in any partition (aws, aws-cn, aws-us-gov, …). */
const KMS_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[A-Za-z0-9/_+=.@-]{1,256}$/

/** The store the ciphertext goes to: `fs` unless named. */
export const InnerStoreRef = z.strictObject({
  store: z.enum(['fs', 'postgres']).default('fs'),
  settings: z.unknown(),
})

/**
 * `sealed` settings: the inner store, and exactly one key source.
 * ```json
 * { "inner": { "store": "fs", "settings": { "root": "/var/lib/coffer/kbs" } },
 *   "masterKeyFile": "/etc/coffer/kbs-master.key" }
 * { "inner": { "store": "postgres", "settings": { … } },
 *   "kms": { "keyArn": "arn:aws:kms:eu-west-1:111122223333:key/…", "endpoint": "https://…" } }
 * ```
 */
export const SealedStoreSettings = z.union([
  z.strictObject({ inner: InnerStoreRef, masterKeyFile: z.string().min(1) }),
  z.strictObject({
    inner: InnerStoreRef,
    kms: z.strictObject({
      keyArn: z.string().regex(KMS_ARN, 'must be a KMS key or alias ARN'),
      region: z
        .string()
        .regex(/^[a-z0-9-]{1,32}$/)
        .optional(),
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
    }),
  }),
])
export type SealedStoreSettings = z.infer<typeof SealedStoreSettings>

export interface SealedStoreConfig {
  /** Raw settings, validated here (their `inner` names the store the caller opened). */
  settings: unknown
  /** The inner store, already open; the sealed store owns it from here (and closes it on failure). */
  inner: KbsStore
}

/** Builds the keyring the settings name. */
export async function sealingKeyringFor(s: SealedStoreSettings): Promise<SealingKeyring> {
  return 'kms' in s ? kmsKeyring(s.kms) : rawAesKeyring(s.masterKeyFile)
}

/** `kbs-store.v1/sealed`: every value envelope-encrypted (AWS Encryption SDK) over another store. */
export const plugin: Registration<Promise<KbsStore>, SealedStoreConfig> = {
  point: STORE_POINT,
  name: 'sealed',
  init: async ({ settings, inner }) => {
    try {
      const s = parseStoreSettings(SealedStoreSettings, settings, 'sealed')
      return createSealedStore({ inner, keyring: await sealingKeyringFor(s) })
    } catch (err) {
      await inner.close()
      throw err
    }
  },
}
