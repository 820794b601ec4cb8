/**
 * The KBS protocol spoken step by step with fetch, so tests can tamper with any field of a
 * handshake (the production client in lib/kbs/client.ts only speaks it correctly).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { runtimeDataDigest } from '../../lib/attest/report-data.js'
import type { TeePubKey } from '../../lib/kbs/protocol.js'

export interface Reply {
  status: number
  body: unknown
  text: string
  headers: Headers
}

export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, init)
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: res.status, body, text, headers: res.headers }
}

export function cookieOf(r: Reply): string | undefined {
  return r.headers.get('set-cookie')?.split(';')[0]
}

export function sessionKey(): { pub: TeePubKey; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const j = publicKey.export({ format: 'jwk' })
  return { pub: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: j.x!, y: j.y! }, priv: privateKey }
}

export async function auth(
  base: string,
  tee = 'sample',
  version = '0.4.0',
): Promise<Reply & { cookie?: string; nonce?: string }> {
  const r = await call(`${base}/kbs/v0/auth`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ version, tee, 'extra-params': '' }),
  })
  const cookie = cookieOf(r)
  const nonce = (r.body as { nonce?: string } | undefined)?.nonce
  return { ...r, ...(cookie ? { cookie } : {}), ...(nonce ? { nonce } : {}) }
}

export function sampleEvidence(nonce: string, pub: TeePubKey): unknown {
  const digest = runtimeDataDigest({ nonce, 'tee-pubkey': pub, 'additional-evidence': '' })
  return { svn: '1', report_data: Buffer.from(digest).toString('base64') }
}

export async function attest(base: string, cookie: string | undefined, body: unknown): Promise<Reply> {
  return call(`${base}/kbs/v0/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

export function attestationBody(nonce: string, pub: TeePubKey, evidence: unknown): unknown {
  return {
    'init-data': null,
    'runtime-data': { nonce, 'tee-pubkey': pub },
    'tee-evidence': { primary_evidence: evidence, additional_evidence: '' },
  }
}

/** A full sample handshake; returns the token and the session key. */
export async function sampleHandshake(
  base: string,
): Promise<{ token: string; cookie: string; priv: KeyObject; pub: TeePubKey }> {
  const a = await auth(base)
  if (a.status !== 200 || !a.cookie || !a.nonce) throw new Error(`auth failed: ${a.status} ${a.text}`)
  const { pub, priv } = sessionKey()
  const r = await attest(base, a.cookie, attestationBody(a.nonce, pub, sampleEvidence(a.nonce, pub)))
  if (r.status !== 200) throw new Error(`attest failed: ${r.status} ${r.text}`)
  return { token: (r.body as { token: string }).token, cookie: a.cookie, priv, pub }
}

/** A GET with the path sent byte for byte (fetch would normalize `..` and `.%2e` away). */
export async function rawGet(
  base: string,
  rawPath: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const { request } = await import('node:http')
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: 'GET', path: rawPath, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown
        try {
          body = JSON.parse(text)
        } catch {
          body = undefined
        }
        const h = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
        resolve({ status: res.statusCode ?? 0, body, text, headers: h })
      })
    })
    req.on('error', reject)
    req.end()
  })
}
