import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import {
  parsePrivateOptions,
  parsePublicOptions,
  type PrivateOptions,
  type PublicOptions,
} from './block-cipher-options.js'
import type { DecryptOptions } from './decrypt-step.js'
import { unwrapPrivateOptions } from './key-wrapping.js'
import { PUBOPTS_ANNOTATION } from './keywrap.js'

/** An encrypted layer's public options and its unwrapped private ones (the key; a KBS may be asked). */
export async function unwrapLayerOptions(
  desc: Descriptor,
  o: DecryptOptions,
  io: Io,
): Promise<{ priv: PrivateOptions; pub: PublicOptions }> {
  const where = `layer ${desc.digest}`
  const annotations = desc.annotations ?? {}
  const pubopts = annotations[PUBOPTS_ANNOTATION]
  if (pubopts === undefined)
    throw new CofferError(
      'ERR_CRYPT_OPTIONS_INVALID',
      `${where} is encrypted but has no ${PUBOPTS_ANNOTATION} annotation`,
    )
  const pub = parsePublicOptions(pubopts, where)
  const priv = parsePrivateOptions(await unwrapPrivateOptions(o.wrappers, o.config, annotations, where, io))
  return { priv, pub }
}
