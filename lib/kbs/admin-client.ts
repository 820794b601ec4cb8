/**
 * The KBS admin API, client side: what `coffer kbs put-resource | set-policy | …` send. Each call
 * signs a fresh short-lived admin JWT with the administrator's private key.
 */
import type { KeyObject } from 'node:crypto'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { readAllLimited } from '../util/io.js'
import { MiB } from '../util/limits.js'
import { createHttpTransport, type HttpTransport } from '../oci/registry/http.js'
import { signAdminToken } from './admin-auth.js'
import { kbsHttpError } from './http-error.js'
import { rvpsMessage } from './reference-values.js'
import type { ResourceUri } from './resource-uri.js'

export interface KbsAdminOptions {
  url: string
  adminKey: KeyObject
  tlsVerify?: boolean
}

export class KbsAdminClient {
  private readonly base: URL
  private readonly http: HttpTransport

  constructor(private readonly o: KbsAdminOptions) {
    try {
      this.base = new URL(o.url)
    } catch {
      throw new CofferError('ERR_INVALID_ARGUMENT', `invalid KBS URL "${o.url}"`)
    }
    this.http = createHttpTransport({ tlsVerify: o.tlsVerify ?? true, userAgent: 'coffer' })
  }

  async putResource(u: ResourceUri, value: Uint8Array, io: Io = {}): Promise<void> {
    await this.call(
      'POST',
      `/kbs/v0/resource/${u.repository}/${u.type}/${u.tag}`,
      Buffer.from(value),
      'application/octet-stream',
      io,
    )
  }

  async deleteResource(u: ResourceUri, io: Io = {}): Promise<void> {
    await this.call('DELETE', `/kbs/v0/resource/${u.repository}/${u.type}/${u.tag}`, undefined, undefined, io)
  }

  async listResources(io: Io = {}): Promise<string[]> {
    const out = (await this.call('GET', '/kbs/v0/resources', undefined, undefined, io)) as {
      resources?: unknown
    }
    if (!Array.isArray(out?.resources))
      throw new CofferError('ERR_KBS_PROTOCOL', 'unexpected answer to a resource listing')
    return out.resources.map(String)
  }

  async setPolicy(text: string, io: Io = {}): Promise<void> {
    await this.call(
      'POST',
      '/kbs/v0/resource-policy',
      JSON.stringify({ policy: Buffer.from(text, 'utf8').toString('base64url') }),
      'application/json',
      io,
    )
  }

  async getPolicy(io: Io = {}): Promise<string> {
    const out = (await this.call('GET', '/kbs/v0/resource-policy', undefined, undefined, io)) as {
      policy?: unknown
    }
    if (typeof out?.policy !== 'string')
      throw new CofferError('ERR_KBS_PROTOCOL', 'unexpected answer to a policy request')
    return Buffer.from(out.policy, 'base64url').toString('utf8')
  }

  async setReferenceValues(
    values: Record<string, readonly (string | number | boolean)[]>,
    io: Io = {},
  ): Promise<void> {
    await this.call(
      'POST',
      '/kbs/v0/reference-value',
      JSON.stringify(rvpsMessage(values)),
      'application/json',
      io,
    )
  }

  async getReferenceValue(name: string, io: Io = {}): Promise<unknown> {
    return this.call('GET', `/kbs/v0/reference-value/${encodeURIComponent(name)}`, undefined, undefined, io)
  }

  /** Applies a workload manifest; the answer names generated secrets and their public keys. */
  async applyManifest(
    text: string,
    io: Io = {},
  ): Promise<{ workloads: string[]; generated: string[]; publicKeys: Record<string, string> }> {
    const out = (await this.call('POST', '/kbs/v0/manifest', text, 'application/json', io)) as {
      workloads?: unknown
      generated?: unknown
      publicKeys?: unknown
    }
    if (!Array.isArray(out?.workloads) || !Array.isArray(out.generated) || typeof out.publicKeys !== 'object')
      throw new CofferError('ERR_KBS_PROTOCOL', 'unexpected answer to a manifest')
    return out as { workloads: string[]; generated: string[]; publicKeys: Record<string, string> }
  }

  async getManifest(io: Io = {}): Promise<unknown> {
    return this.call('GET', '/kbs/v0/manifest', undefined, undefined, io)
  }

  async close(): Promise<void> {
    await this.http.close()
  }

  private async call(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body: string | Buffer | undefined,
    type: string | undefined,
    io: Io,
  ): Promise<unknown> {
    const token = await signAdminToken(this.o.adminKey)
    let res
    try {
      res = await this.http.send({
        method,
        url: new URL(path, this.base),
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(type ? { 'content-type': type } : {}),
        },
        ...(body !== undefined ? { body } : {}),
        ...(io.signal ? { signal: io.signal } : {}),
      })
    } catch (err) {
      throw new CofferError(
        'ERR_KBS_UNREACHABLE',
        `cannot reach the KBS at ${this.base.origin}: ${(err as Error).message}`,
        { cause: err },
      )
    }
    const raw = await readAllLimited(res.body, 4 * MiB, 'KBS response')
    if (res.status === 200) {
      if (raw.length === 0) return undefined
      try {
        return JSON.parse(raw.toString('utf8'))
      } catch {
        throw new CofferError('ERR_KBS_PROTOCOL', 'the KBS answered with invalid JSON')
      }
    }
    throw kbsHttpError(res.status, raw, `${method} ${path}`)
  }
}
