import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { digestOf } from '../../../../lib/oci/digest.js'
import { openLayout } from '../../../../lib/oci/layout/layout-store.js'
import { isCofferError } from '../../../../lib/util/errors.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-ingest-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('OCI layout ingest (a blob file written in place by a layer step)', () => {
  it('is a hidden temp file until commit, then a 0644 blob; abort after commit is harmless', async () => {
    const store = await openLayout(join(dir, 'l'), { create: true })
    const ingest = await store.openIngest()
    expect(dirname(ingest.path)).toBe(join(dir, 'l', 'blobs', 'sha256'))
    const data = Buffer.from('layer bytes')
    const desc = { digest: digestOf(data), size: data.length }
    await writeFile(ingest.path, data, { flag: 'wx', mode: 0o600 })
    expect(await store.blobSize(desc.digest)).toBeUndefined()
    await ingest.sync(desc)
    expect(await store.blobSize(desc.digest)).toBeUndefined()
    await ingest.commit(desc)
    expect(await readFile(store.blobPath(desc.digest))).toEqual(data)
    expect((await stat(store.blobPath(desc.digest))).mode & 0o777).toBe(0o644)
    await ingest.abort()
    expect(await readdir(join(dir, 'l', 'blobs', 'sha256'))).toEqual([desc.digest.slice(7)])
  })

  it('a size that does not match is ERR_OCI_SIZE_MISMATCH and removes the file; abort removes an uncommitted one', async () => {
    const store = await openLayout(join(dir, 'l'), { create: true })
    const short = await store.openIngest()
    await writeFile(short.path, 'abc', { flag: 'wx', mode: 0o600 })
    const err = await short.sync({ digest: digestOf('abcd'), size: 4 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isCofferError(err, 'ERR_OCI_SIZE_MISMATCH')).toBe(true)
    expect(existsSync(short.path)).toBe(false)
    const dropped = await store.openIngest()
    await writeFile(dropped.path, 'x', { flag: 'wx', mode: 0o600 })
    await dropped.abort()
    expect(await readdir(join(dir, 'l', 'blobs', 'sha256'))).toEqual([])
  })
})
