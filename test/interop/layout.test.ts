/** coffer's OCI layouts as skopeo and umoci see them, with concurrent writers and gc through the CLI. */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSampleImage } from '../../cli/demo/sample-image.js'
import { coffer } from '../helpers/coffer.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

let work: string
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-layouts-'))
  await makeSampleLayout(join(work, 'a'), 'one', { layers: 2, layerBytes: 200_000 })
  await makeSampleLayout(join(work, 'b'), 'two', { layers: 3, layerBytes: 200_000 })
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('OCI layouts', () => {
  it('two copies into one layout at once keep both tags, and skopeo and umoci read both', async () => {
    const shared = join(work, 'shared')
    const runs = await Promise.all([
      coffer(['copy', `oci:${join(work, 'a')}:one`, `oci:${shared}:one`]),
      coffer(['copy', `oci:${join(work, 'b')}:two`, `oci:${shared}:two`]),
      coffer(['copy', `oci:${join(work, 'a')}:one`, `oci:${shared}:one-again`]),
    ])
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0])
    for (const tag of ['one', 'two', 'one-again']) await skopeo(['inspect', `oci:${shared}:${tag}`])
    await promisify(execFile)('umoci', [
      'unpack',
      '--rootless',
      '--image',
      `${shared}:two`,
      join(work, 'bundle'),
    ])
    expect(await readdir(join(work, 'bundle', 'rootfs'))).not.toHaveLength(0)
  })

  it('coffer gc removes only unreachable blobs; skopeo still reads the rest', async () => {
    const dir = join(work, 'gc')
    await buildSampleImage(dir, 'old', [[{ path: 'old', content: 'old' }]])
    await buildSampleImage(dir, 'new', [[{ path: 'new', content: 'new' }]])
    // Retagging `old` onto `new` orphans the old image's three blobs.
    expect((await coffer(['copy', `oci:${dir}:new`, `oci:${dir}:old`])).code).toBe(0)
    const run = await coffer(['gc', '--json', `oci:${dir}`])
    expect(run.code).toBe(0)
    expect(run.json()[0]).toMatchObject({ removedBlobs: 3 })
    await skopeo(['inspect', `oci:${dir}:old`])
    await skopeo(['inspect', `oci:${dir}:new`])
    expect((await coffer(['gc', `oci:${dir}:tag`])).code).toBe(2)
  })

  it('copying a layout image onto itself is a no-op that keeps it intact', async () => {
    const dir = join(work, 'self')
    const img = await buildSampleImage(dir, 'x')
    const run = await coffer(['copy', '--json', `oci:${dir}:x`, `oci:${dir}:x`])
    expect(run.code).toBe(0)
    const { stdout } = await skopeo(['inspect', '--raw', `oci:${dir}:x`])
    expect(JSON.parse(stdout)).toBeTruthy()
    expect(run.json().find((l) => 'result' in l)).toMatchObject({
      result: { digest: img.digest, blobsCopied: 0 },
    })
  })
})
