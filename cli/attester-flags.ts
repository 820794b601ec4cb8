import { CofferError } from '../lib/util/errors.js'

/** `--attester-opt key=value` (repeatable) → attester plugin settings. */
export function attesterSettings(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  for (const kv of (raw as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=')
    if (eq < 1) throw new CofferError('ERR_USAGE', `--attester-opt wants KEY=VALUE, not "${kv}"`)
    out[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return out
}
