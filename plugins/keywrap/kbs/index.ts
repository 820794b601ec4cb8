import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import type { Registration } from '../../../lib/util/registry.js'
import { createKbsKeyWrapper } from './kbs-keywrap.js'

export { createKbsKeyWrapper, kbsKekEntry, KBS_ANNOTATION, KBS_KEKS, type KekSource } from './kbs-keywrap.js'

export const plugin: Registration<KeyWrapper> = {
  point: 'keywrap.v1',
  name: 'kbs',
  init: () => createKbsKeyWrapper(),
}
