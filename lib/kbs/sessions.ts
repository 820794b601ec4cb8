/**
 * RCAR sessions: created by /auth with a fresh nonce, consumed by exactly one /attest. They live
 * in the store's `session` namespace so that replicas sharing a database share sessions, and
 * expire after the configured timeout (trustee: 5 minutes).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { z } from 'zod'
import type { ReportDataHash } from '../attest/report-data.js'
import type { KbsStore } from './store.js'

const SessionSchema = z.object({
  tee: z.string(),
  nonce: z.string(),
  hash: z.enum(['sha256', 'sha384', 'sha512']),
  expiresAt: z.number(),
  state: z.enum(['authenticated', 'attested']),
  token: z.string().optional(),
})
export type Session = z.infer<typeof SessionSchema>

/** Session ids are UUIDv4 in "simple" form, as trustee sets them. */
export const SESSION_ID = /^[0-9a-f]{32}$/

export class SessionStore {
  constructor(
    private readonly store: KbsStore,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async create(tee: string, hash: ReportDataHash): Promise<{ id: string; session: Session }> {
    const id = randomUUID().replaceAll('-', '')
    const session: Session = {
      tee,
      // 32 bytes, standard base64 with padding, like trustee's nonce.
      nonce: randomBytes(32).toString('base64'),
      hash,
      expiresAt: this.now() + this.timeoutMs,
      state: 'authenticated',
    }
    await this.store.put('session', id, encode(session), { expiresAt: session.expiresAt })
    return { id, session }
  }

  async get(id: string): Promise<Session | undefined> {
    if (!SESSION_ID.test(id)) return undefined
    const raw = await this.store.get('session', id)
    if (!raw) return undefined
    const parsed = SessionSchema.safeParse(JSON.parse(Buffer.from(raw).toString('utf8')))
    if (!parsed.success || parsed.data.expiresAt <= this.now()) return undefined
    return parsed.data
  }

  /**
   * Takes an authenticated session for attestation. Deleting it first makes the nonce single-use
   * even when two /attest requests race (only one delete succeeds), on every store.
   */
  async consume(id: string): Promise<Session | undefined> {
    const s = await this.get(id)
    if (!s || s.state !== 'authenticated') return undefined
    return (await this.store.delete('session', id)) ? s : undefined
  }

  /** Records the token of an attested session; it keeps its original expiry. */
  async markAttested(id: string, session: Session, token: string): Promise<void> {
    const attested: Session = { ...session, state: 'attested', token }
    await this.store.put('session', id, encode(attested), { expiresAt: session.expiresAt })
  }
}

function encode(s: Session): Uint8Array {
  return Buffer.from(JSON.stringify(s), 'utf8')
}
