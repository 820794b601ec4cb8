/**
 * Reference values, as trustee's RVPS takes them: a message
 * `{"version":"0.1.0","type":"sample","payload":"<base64 of {\"<name>\": [values…]}>"}` whose
 * entries are stored one per name with an expiry (default 12 months). Verifiers read them through
 * the `ReferenceValues` view, names like `tpm.pcr11` or `snp.measurement`.
 */
import { z } from 'zod'
import type { ReferenceValues } from '../attest/types.js'
import { CofferError } from '../util/errors.js'
import type { KbsStore } from './store.js'

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const MAX_VALUES = 1024

export const RvpsMessageSchema = z.object({
  version: z.literal('0.1.0'),
  type: z.literal('sample'),
  payload: z.string().max(1024 * 1024),
})

const StoredSchema = z.object({
  version: z.literal('0.1.0'),
  name: z.string(),
  expiration: z.string(),
  value: z.array(z.string()),
})
type Stored = z.infer<typeof StoredSchema>

/** Parses an RVPS message into name → values; ERR_ATTEST_REFERENCE_VALUES_INVALID if malformed. */
export function parseRvpsMessage(body: unknown): Map<string, string[]> {
  const fail = (why: string): never => {
    throw new CofferError('ERR_ATTEST_REFERENCE_VALUES_INVALID', `invalid reference-value message: ${why}`)
  }
  const msg = RvpsMessageSchema.safeParse(body)
  if (!msg.success) return fail('expected {"version":"0.1.0","type":"sample","payload":"<base64 JSON>"}')
  let payload: unknown
  try {
    payload = JSON.parse(Buffer.from(msg.data.payload, 'base64').toString('utf8'))
  } catch {
    return fail('the payload is not base64 of a JSON object')
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    return fail('the payload must be a JSON object')
  const out = new Map<string, string[]>()
  for (const [name, raw] of Object.entries(payload)) {
    if (!NAME.test(name)) fail(`"${name.slice(0, 64)}" is not a valid reference-value name`)
    const list = Array.isArray(raw) ? raw : [raw]
    if (list.length > MAX_VALUES) fail(`"${name}" has more than ${MAX_VALUES} values`)
    const values = list.map((v) => {
      // Kept as given: verifiers compare hex case-insensitively, and base64 forms (trustee's trusted_ak) are case-sensitive.
      if (typeof v === 'string' && v.length <= 4096) return v
      if (typeof v === 'number' || typeof v === 'boolean') return String(v)
      return fail(`"${name}" values must be strings, numbers or booleans`)
    })
    out.set(name, values)
  }
  return out
}

/** Builds the RVPS message for name → values (what `coffer kbs set-reference-values` sends). */
export function rvpsMessage(values: Record<string, readonly (string | number | boolean)[]>): unknown {
  return { version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64') }
}

export class ReferenceValueStore {
  constructor(
    private readonly store: KbsStore,
    private readonly now: () => number = Date.now,
  ) {}

  async set(values: Map<string, string[]>, validForMs = 365 * 24 * 3600 * 1000): Promise<void> {
    const expiration = new Date(this.now() + validForMs).toISOString()
    for (const [name, value] of values) {
      const stored: Stored = { version: '0.1.0', name, expiration, value }
      await this.store.put('reference-value', name, Buffer.from(JSON.stringify(stored)))
    }
  }

  async getOne(name: string): Promise<Stored | undefined> {
    if (!NAME.test(name)) return undefined
    const raw = await this.store.get('reference-value', name)
    if (!raw) return undefined
    const r = StoredSchema.safeParse(JSON.parse(Buffer.from(raw).toString('utf8')))
    if (!r.success) throw new CofferError('ERR_KBS_STORE_CORRUPT', `reference value "${name}" is corrupt`)
    return Date.parse(r.data.expiration) > this.now() ? r.data : undefined
  }

  /** A snapshot of every unexpired value, for one verification. */
  async snapshot(): Promise<ReferenceValues> {
    const map = new Map<string, readonly string[]>()
    for (const name of await this.store.list('reference-value')) {
      const v = await this.getOne(name)
      if (v) map.set(name, v.value)
    }
    return { get: (name) => map.get(name) }
  }
}
