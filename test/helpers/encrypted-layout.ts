/**
 * Reading encrypted OCI layouts in interop tests without coffer's own code: the manifest a tag
 * names, the wrapped-key elements of a scheme's annotation, and a check of unwrapped private
 * options against ocicrypt's exact JSON (spec §1.4).
 */
import { createHash } from 'node:crypto'
import { cp, readFile, writeFile } from 'node:fs/promises'
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

/** Reads and adds blobs of a layout being edited. */
export interface LayoutBlobs {
  read(digest: string): Promise<Buffer>
  /** Writes `bytes` as a blob; returns its digest. */
  put(bytes: Buffer): Promise<string>
}

/**
 * Copies the OCI layout `from` to `to` and lets `edit` change the manifest tagged `tag` (and add
 * blobs); the manifest is then re-hashed and index.json repointed at it, as a re-wrapper or an
 * attacker who can rewrite the layout would do, so only the crypto can tell.
 */
export async function editedLayoutCopy(
  from: string,
  to: string,
  edit: (m: Manifest, blobs: LayoutBlobs) => Promise<void>,
  tag = 'v1',
): Promise<void> {
  await cp(from, to, { recursive: true })
  const blobPath = (d: string): string => join(to, 'blobs', 'sha256', d.slice('sha256:'.length))
  const blobs: LayoutBlobs = {
    read: (d) => readFile(blobPath(d)),
    put: async (bytes) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
      await writeFile(blobPath(digest), bytes)
      return digest
    },
  }
  const m = await manifestOf(to, tag)
  await edit(m, blobs)
  const body = Buffer.from(JSON.stringify(m))
  const digest = await blobs.put(body)
  const indexPath = join(to, 'index.json')
  const index = await readJson<{ manifests: Json[] }>(indexPath)
  index.manifests = index.manifests.map((e) =>
    (e.annotations as Record<string, string> | undefined)?.[REF_NAME] === tag
      ? { ...e, digest, size: body.length }
      : e,
  )
  await writeFile(indexPath, JSON.stringify(index))
}

/** A decrypted layout holds exactly the original layers, and no `annotation` is left on them. */
export async function expectDecryptedTo(
  layout: string,
  original: readonly { mediaType: string; digest: string }[],
  annotation: string,
): Promise<void> {
  const m = await manifestOf(layout)
  expect(m.layers.map((l) => [l.mediaType, l.digest])).toEqual(original.map((l) => [l.mediaType, l.digest]))
  expect(m.layers.every((l) => l.annotations === undefined || !(annotation in l.annotations))).toBe(true)
}
