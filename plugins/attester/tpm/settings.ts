import { z } from 'zod'
import { ALL_PCRS, DEFAULT_AK_HANDLE, DEFAULT_TCTI, PCR_COUNT } from '../../../lib/attest/tpm/constants.js'
import type { PluginSettings } from '../../../lib/attest/types.js'
import { CofferError } from '../../../lib/util/errors.js'

/** Persistent handles live in 0x81000000..0x81FFFFFF (TPM_HT_PERSISTENT). */
const PERSISTENT_MIN = 0x81000000
const PERSISTENT_MAX = 0x81ffffff

// Settings arrive as JSON from a config file or as strings from `--attester-opt KEY=VALUE`, so
// each number also accepts its string form.
const handle = z
  .union([
    z.number().int(),
    z.string().regex(/^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$/, 'a handle such as 0x81010002'),
  ])
  .transform((v) => (typeof v === 'number' ? v : Number(v)))
  .refine(
    (v) => v >= PERSISTENT_MIN && v <= PERSISTENT_MAX,
    'not a persistent handle (0x81000000..0x81ffffff)',
  )

/** `[0, 7, 11]`, `"0,7,11"` or `"all"`. */
const pcrList = z
  .union([
    z.array(z.number().int()),
    z.literal('all').transform(() => [...ALL_PCRS]),
    z
      .string()
      .regex(/^\d{1,2}(,\d{1,2})*$/, 'PCR numbers such as 0,7,11, or all')
      .transform((v) => v.split(',').map(Number)),
  ])
  .pipe(
    z
      .array(
        z
          .number()
          .int()
          .min(0)
          .max(PCR_COUNT - 1),
      )
      .min(1)
      .max(PCR_COUNT)
      .refine((a) => new Set(a).size === a.length, 'PCRs listed twice')
      .transform((a) => [...a].sort((x, y) => x - y)),
  )

// Not strict: the attester selection gives every candidate attester the same settings, so keys
// meant for another TEE's attester must not make this one fail.
const settingsSchema = z.object({
  /** TCTI as tpm2-tools' `-T` takes it: `device:/dev/tpmrm0`, `swtpm:host=…,port=…`, `mssim:…`. */
  tcti: z
    .string()
    .max(256)
    .regex(/^[a-z][a-z0-9_-]*(:.*)?$/, 'a TCTI such as device:/dev/tpmrm0')
    .default(DEFAULT_TCTI),
  /** Persistent handle of the AK (guest-components' AA_TPM_AK_HANDLE). */
  akHandle: handle.default(DEFAULT_AK_HANDLE),
  /** sha256-bank PCRs to quote; all 24 for trustee, whose verifier reads pcrs[8] as PCR 8. */
  pcrs: pcrList.default([...ALL_PCRS]),
})

export type TpmAttesterSettings = z.output<typeof settingsSchema>

/** Validates the plugin's settings; anything wrong is ERR_CONFIG_INVALID naming the key. */
export function parseTpmAttesterSettings(settings: PluginSettings = {}): TpmAttesterSettings {
  const r = settingsSchema.safeParse(settings)
  if (!r.success) {
    const i = r.error.issues[0]
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `tpm attester: ${i?.path.join('.') || 'settings'}: ${i?.message ?? 'invalid'}`,
    )
  }
  return r.data
}
