/**
 * Registration of the `snp` attester (STYLE §2): data only, importing this registers nothing.
 * Settings (all optional, for unusual guests and tests): `devicePath`, `tsmRoot`.
 */
import { z } from 'zod'
import { parsePluginSettings } from '../../../lib/attest/plugin-settings.js'
import { createSnpAttester } from '../../../lib/attest/snp/attester.js'
import { ATTESTER_POINT, type Attester, type PluginSettings } from '../../../lib/attest/types.js'
import type { Registration } from '../../../lib/util/registry.js'

export { createSnpAttester } from '../../../lib/attest/snp/attester.js'

/**
 * Loose on purpose: attester selection hands every attester the same `--attester-opt` settings,
 * so keys meant for another attester are ignored, not refused.
 */
export const SnpAttesterSettings = z.object({
  devicePath: z.string().min(1).optional(),
  tsmRoot: z.string().min(1).optional(),
})

/** `attester.v1/snp`: configfs-tsm reports; `detect()` needs the guest device and configfs-tsm. */
export const plugin: Registration<Attester, PluginSettings> = {
  point: ATTESTER_POINT,
  name: 'snp',
  init: (settings) => createSnpAttester(parsePluginSettings(SnpAttesterSettings, settings, 'snp attester')),
}
