/**
 * Reading encrypted OCI layouts in interop tests without coffer's own code: the manifest a tag
 * names, the wrapped-key elements of a scheme's annotation, and a check of unwrapped private
 * options against ocicrypt's exact JSON (spec §1.4).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'

export const REF_NAME = 'org.opencontainers.image.ref.name'

export interface Manifest {
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[]
  [member: string]: unknown
}
export type Json = Record<string, unknown>

export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T
}

/** The manifest tagged `tag` in an OCI layout. */
export async function manifestOf(layout: string, tag = 'v1'): Promise<Manifest> {
  const index = await readJson<{ manifests: { digest: string; annotations?: Record<string, string> }[] }>(
    join(layout, 'index.json'),
  )
  const entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag)
  if (!entry) throw new Error(`${layout} has no ${tag}`)
  return readJson<Manifest>(join(layout, 'blobs', 'sha256', entry.digest.slice('sha256:'.length)))
}

/** Each layer's elements of `annotation` (comma-separated, base64), decoded (spec §1.2). */
export function annotationElements(m: Manifest, annotation: string): Buffer[][] {
  return m.layers.map((l) => {
    const value = l.annotations?.[annotation]
    if (value === undefined) throw new Error(`layer ${l.digest} has no ${annotation}`)
    return value.split(',').map((e) => Buffer.from(e, 'base64'))
  })
}

/** Unwrapped private options are ocicrypt's JSON for this layer: symkey, digest, cipheroptions.nonce. */
export function expectPrivateOptions(plain: Uint8Array, layerDigest: string): void {
  const opts = JSON.parse(Buffer.from(plain).toString()) as Json
  expect(Object.keys(opts)).toEqual(['symkey', 'digest', 'cipheroptions'])
  expect(Buffer.from(opts.symkey as string, 'base64')).toHaveLength(32)
  expect(opts.digest).toBe(layerDigest)
  expect(Object.keys(opts.cipheroptions as Json)).toEqual(['nonce'])
  expect(Buffer.from((opts.cipheroptions as Json).nonce as string, 'base64')).toHaveLength(16)
}
