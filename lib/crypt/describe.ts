import type { Descriptor } from '../oci/schemas.js'
import { ENC_KEYS_ANNOTATION_PREFIX, type KeyWrapper } from './keywrap.js'
import { isEncryptedMediaType } from './media-types.js'

/** For `coffer inspect`: per scheme, who an encrypted layer is encrypted for (public facts only). */
export interface LayerEncryption {
  scheme: string
  /** One entry per recipient, when the wrapper can tell; otherwise empty. */
  recipients: string[]
}

/** Undefined for a plaintext layer. Unreadable annotations are reported, never thrown. */
export function describeLayerEncryption(
  desc: Descriptor,
  wrappers: readonly KeyWrapper[],
): LayerEncryption[] | undefined {
  if (!isEncryptedMediaType(desc.mediaType)) return undefined
  const out: LayerEncryption[] = []
  for (const [key, value] of Object.entries(desc.annotations ?? {})) {
    if (!key.startsWith(ENC_KEYS_ANNOTATION_PREFIX)) continue
    const scheme = key.slice(ENC_KEYS_ANNOTATION_PREFIX.length)
    const wrapper = wrappers.find((w) => w.annotationId === key)
    const recipients: string[] = []
    for (const element of value.split(',')) {
      try {
        recipients.push(...(wrapper?.describeRecipients?.(Buffer.from(element, 'base64')) ?? []))
      } catch {
        recipients.push('(unreadable)')
      }
    }
    out.push({ scheme, recipients })
  }
  return out
}
