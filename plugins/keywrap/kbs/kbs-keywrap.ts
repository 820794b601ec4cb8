/**
 * The `kbs` key wrapper: the layer key is wrapped with a key-encryption key (KEK) held by a Key
 * Broker Service, in the format Confidential Containers' attestation-agent key provider writes and
 * its confidential-data-hub reads (spec §2.4), so their guests can decrypt coffer images too:
 *
 *   annotation `org.opencontainers.image.enc.keys.provider.attestation-agent`
 *   = base64 of `{"kid":"kbs:///repo/type/tag","wrapped_data":b64(AES-256-GCM(KEK, iv, opts) ‖ tag),
 *                 "iv":b64(12 bytes),"wrap_type":"A256GCM"}`
 *
 * At build time the KEK is a local file (`--kek`), registered in the KBS under the same URI; in
 * the guest the KEK comes from the KBS after attestation. The first arrives in the DecryptConfig,
 * the second through a `KekSource`, so the wrapper itself never talks to the network.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { decryptFailed } from '../../../lib/crypt/decrypt-failed.js'
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { formatResourceUri, parseResourceUri } from '../../../lib/kbs/resource-uri.js'
import { CofferError } from '../../../lib/util/errors.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import { MAX_CRYPT_OPTIONS_BYTES } from '../../../lib/util/limits.js'

export const KBS_ANNOTATION = 'org.opencontainers.image.enc.keys.provider.attestation-agent'
/** EncryptConfig/DecryptConfig entry: JSON `{"kid":"kbs:///…","kek":"<base64 32 bytes>"}` per KEK. */
export const KBS_KEKS = 'kbs-keks'

/** One KEK and the resource URI it lives under. */
export interface KbsKek {
  kid: string
  kek: Buffer
}

/** Builds the config entry for a KEK (what `--kek` with a `kbs:///` recipient produces). */
export function kbsKekEntry(kid: string, kek: Uint8Array): Uint8Array {
  if (kek.length !== 32)
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `the KEK for ${kid} must be 32 bytes (AES-256), not ${kek.length}`,
    )
  return Buffer.from(
    JSON.stringify({
      kid: formatResourceUri(parseResourceUri(kid)),
      kek: Buffer.from(kek).toString('base64'),
    }),
  )
}

const packetSchema = z.looseObject({
  kid: z.string().max(1024),
  wrapped_data: z.string(),
  iv: z.string(),
  wrap_type: z.string(),
  version: z.string().optional(),
  provider: z.string().optional(),
})

/** Fetches a KEK by its resource URI, e.g. from a KBS after attestation (lib/kbs/client.ts). */
export type KekSource = (kid: string, io: Io) => Promise<Uint8Array>

class KbsKeyWrapper implements KeyWrapper {
  readonly name = 'kbs'
  readonly annotationId = KBS_ANNOTATION
  /** KEKs fetched once per URI and process: every layer of an image usually names the same one. */
  private readonly fetched = new Map<string, Promise<Uint8Array>>()

  constructor(private readonly source?: KekSource) {}

  hasRecipients(ec: EncryptConfig): boolean {
    return (ec[KBS_KEKS]?.length ?? 0) > 0
  }

  noPossibleKeys(dc: DecryptConfig): boolean {
    return !this.source && (dc[KBS_KEKS]?.length ?? 0) === 0
  }

  async wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const keks = readKeks(ec[KBS_KEKS])
    // One packet names one KEK: CDH reads a single AnnotationPacket per annotation.
    if (keks.length !== 1)
      throw new CofferError('ERR_CRYPT_RECIPIENT_INVALID', 'an image can name one kbs:/// key-encryption key')
    const { kid, kek } = keks[0]!
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', kek, iv)
    const wrapped = Buffer.concat([cipher.update(privateOptions), cipher.final(), cipher.getAuthTag()])
    return Buffer.from(
      JSON.stringify({
        kid,
        wrapped_data: wrapped.toString('base64'),
        iv: iv.toString('base64'),
        wrap_type: 'A256GCM',
      }),
    )
  }

  async unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const packet = parsePacket(wrapped)
    const kid = formatResourceUri(parseResourceUri(packet.kid))
    const kek = readKeks(dc[KBS_KEKS]).find((k) => k.kid === kid)?.kek ?? (await this.fetchKek(kid, o))
    if (!kek)
      throw new CofferError(
        'ERR_CRYPT_NO_KEY',
        `the layer key is held by the KBS under ${kid}; give its KEK (--kek) or fetch it after attestation (--kbs-url)`,
      )
    if (kek.length !== 32)
      throw new CofferError(
        'ERR_CRYPT_KEY_INVALID',
        `the KEK under ${kid} must be 32 bytes (AES-256), not ${kek.length}`,
      )
    const iv = Buffer.from(packet.iv, 'base64')
    const data = Buffer.from(packet.wrapped_data, 'base64')
    if (packet.wrap_type !== 'A256GCM' || iv.length !== 12 || data.length < 16) throw decryptFailed()
    try {
      const decipher = createDecipheriv('aes-256-gcm', kek, iv)
      decipher.setAuthTag(data.subarray(data.length - 16))
      return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()])
    } catch {
      throw decryptFailed()
    }
  }

  private async fetchKek(kid: string, o: Io): Promise<Buffer | undefined> {
    if (!this.source) return undefined
    let p = this.fetched.get(kid)
    if (!p) {
      p = this.source(kid, o)
      // A failure is not cached: the next layer may try again (e.g. after a KBS restart).
      p.catch(() => this.fetched.delete(kid))
      this.fetched.set(kid, p)
    }
    return Buffer.from(await p)
  }

  describeRecipients(wrapped: Uint8Array): string[] {
    return [`${parsePacket(wrapped).kid} (KBS)`]
  }
}

function parsePacket(wrapped: Uint8Array): z.infer<typeof packetSchema> {
  if (wrapped.byteLength > MAX_CRYPT_OPTIONS_BYTES)
    throw new CofferError('ERR_TOO_LARGE', 'the kbs annotation is too large')
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(wrapped).toString('utf8'))
  } catch {
    throw new CofferError('ERR_CRYPT_OPTIONS_INVALID', 'the attestation-agent annotation is not JSON')
  }
  const parsed = packetSchema.safeParse(json)
  if (!parsed.success)
    throw new CofferError(
      'ERR_CRYPT_OPTIONS_INVALID',
      'the attestation-agent annotation is not an AnnotationPacket',
    )
  if ((parsed.data.provider ?? 'kbs') !== 'kbs') {
    throw new CofferError(
      'ERR_CRYPT_UNSUPPORTED',
      `the layer key is held by provider "${parsed.data.provider}", not a KBS`,
    )
  }
  return parsed.data
}

function readKeks(entries: Uint8Array[] | undefined): KbsKek[] {
  return (entries ?? []).map((e) => {
    const { kid, kek } = JSON.parse(Buffer.from(e).toString('utf8')) as { kid: string; kek: string }
    return { kid, kek: Buffer.from(kek, 'base64') }
  })
}

/**
 * A kbs KeyWrapper (CoCo attestation-agent format). Without a source it uses only the KEKs in the
 * DecryptConfig (`--kek`); with one it fetches missing KEKs through it.
 */
export function createKbsKeyWrapper(source?: KekSource): KeyWrapper {
  return new KbsKeyWrapper(source)
}
