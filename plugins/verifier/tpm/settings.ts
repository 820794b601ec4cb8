import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import type { PluginSettings } from '../../../lib/attest/types.js'
import { CofferError } from '../../../lib/util/errors.js'

const settingsSchema = z
  .object({
    /**
     * PEM public keys (files) of AKs the verifier trusts, like trustee's trusted_ak_keys_dir.
     * The reference value `tpm.trusted_ak` adds more at run time.
     */
    trustedAkKeys: z
      .union([
        z
          .string()
          .min(1)
          .transform((f) => [f]),
        z.array(z.string().min(1)).max(1000),
      ])
      .default([]),
  })
  .strict()

export interface TpmVerifierSettings {
  /** Lowercase hex sha256 of each trusted AK's DER SubjectPublicKeyInfo. */
  readonly trustedAkFingerprints: ReadonlySet<string>
}

/** Largest PEM public key file read (an RSA-4096 SPKI PEM is ~800 bytes). */
const MAX_AK_PEM_BYTES = 16 * 1024

/**
 * Validates the settings and loads the trusted AK files. Runs once when the KBS builds its
 * verifiers, so a missing or unreadable key file stops start-up (ERR_CONFIG_INVALID) instead of
 * silently trusting fewer AKs.
 */
export function parseTpmVerifierSettings(settings: PluginSettings = {}): TpmVerifierSettings {
  const r = settingsSchema.safeParse(settings)
  if (!r.success) {
    const i = r.error.issues[0]
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `tpm verifier: ${i?.path.join('.') || 'settings'}: ${i?.message ?? 'invalid'}`,
    )
  }
  const fingerprints = new Set<string>()
  for (const file of r.data.trustedAkKeys) fingerprints.add(fingerprintOfPemFile(file))
  return { trustedAkFingerprints: fingerprints }
}

function fingerprintOfPemFile(file: string): string {
  let pem: Buffer
  try {
    pem = readFileSync(file)
  } catch (cause) {
    throw new CofferError('ERR_CONFIG_INVALID', `tpm verifier: cannot read trusted AK key ${file}`, { cause })
  }
  if (pem.length > MAX_AK_PEM_BYTES) {
    throw new CofferError('ERR_CONFIG_INVALID', `tpm verifier: trusted AK key ${file} is too large`)
  }
  try {
    const der = createPublicKey({ key: pem, format: 'pem' }).export({ format: 'der', type: 'spki' })
    return createHash('sha256').update(der).digest('hex')
  } catch (cause) {
    throw new CofferError('ERR_CONFIG_INVALID', `tpm verifier: ${file} is not a PEM public key`, { cause })
  }
}
