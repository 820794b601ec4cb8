import { z } from 'zod'
import { CofferError } from '../util/errors.js'

/**
 * Validates one KBS store plugin's settings (untrusted configuration) with its zod schema;
 * a mismatch is ERR_CONFIG_INVALID naming the store and the offending fields, never their values.
 */
export function parseStoreSettings<T>(schema: z.ZodType<T>, settings: unknown, store: string): T {
  const r = schema.safeParse(settings)
  if (!r.success) {
    const where = r.error.issues.map((i) => `${i.path.join('.') || '(settings)'}: ${i.message}`).join('; ')
    throw new CofferError('ERR_CONFIG_INVALID', `kbs store "${store}" settings: ${where}`)
  }
  return r.data
}
