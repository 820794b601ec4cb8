/**
 * The layer store as `coffer pull` users meet it: gc run while a pull is mid-way waits for it and
 * deletes nothing that pull uses; records `coffer pull` wrote are listed and removed with
 * `coffer image-service list|remove --store` (then gc frees their layers); pulling again into the
 * same --rootfs is a coded error before anything is fetched.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer, COFFER_BIN, resultOf } from '../helpers/coffer.js'
import { startGatedProxy, type GatedProxy } from '../helpers/gated-proxy.js'
import { writeLayerImage, type LayerImage } from '../helpers/layer-image.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { skopeo } from '../helpers/skopeo.js'
import type { TarEntry } from '../helpers/tar-builder.js'

const BASE: TarEntry[] = [
  { name: 'etc/', type: 'dir', mode: 0o755 },
  { name: 'etc/os-release', content: 'ID=coffer\n' },
]
const APP: TarEntry[] = [{ name: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]

describe('coffer pull and the layer store', () => {
  let work: string
  let reg: TestRegistry
  let proxy: GatedProxy
  let full: LayerImage
  const file = (n: string): string => join(work, n)
  const store = (): string => file('store')
  const pullArgs = (host: string, tag: string, rootfs: string): string[] => [
    'pull',
    '--json',
    '--tls-verify=false',
    '--insecure-policy',
    '--store',
    store(),
    '--rootfs',
    file(rootfs),
    '--rootfs-mode',
    'materialize',
    `docker://${host}/app:${tag}`,
  ]
  const layersInStore = async (): Promise<string[]> => (await readdir(join(store(), 'layers/sha256'))).sort()

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-pull-store-'))
    reg = await startRegistry()
    // `base` is the first layer of `full`: the same bytes, the same diff_id.
    const base = await writeLayerImage(file('base'), [BASE], 'v1')
    full = await writeLayerImage(file('full'), [BASE, APP], 'v1')
    expect(base.diffIds[0]).toBe(full.diffIds[0])
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${file('base')}:v1`,
      `docker://${reg.host}/app:base`,
    ])
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${file('full')}:v1`,
      `docker://${reg.host}/app:full`,
    ])
    // Holds back the fetch of full's second layer (its blob digest: the gzip writeLayerImage stored).
    const appBlob = createHash('sha256').update(gzipSync(full.tars[1]!)).digest('hex')
    proxy = await startGatedProxy(reg.host, (path) => path.includes(`/blobs/sha256:${appBlob}`))
  }, 120_000)
  afterAll(async () => {
    await proxy?.close()
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('remove --store forgets a coffer pull image by name; gc run during a pull waits and deletes nothing it uses', async () => {
    const base = await coffer(pullArgs(reg.host, 'base', 'r-base'))
    expect(base.code, base.stderr).toBe(0)
    const listed = await coffer(['image-service', 'list', '--json', '--store', store()])
    expect(listed.json()[0]!.images).toEqual([
      expect.objectContaining({ references: [`docker://${reg.host}/app:base`] }),
    ])
    const removed = await coffer(['image-service', 'remove', '--store', store(), `${reg.host}/app:base`])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toMatch(/gc --store/)
    // The base layer is now unreferenced: what gc would take.
    expect(await layersInStore()).toEqual([full.diffIds[0]!.slice(7)])

    // A pull of `full` reuses that layer and stops at the gate fetching the other one.
    const pulling = coffer(pullArgs(proxy.host, 'full', 'r-full'))
    await proxy.reached
    // gc's first line says it is waiting for the pull; without the lock it would exit having
    // deleted the reused layer under the pull.
    const gcProcess = spawn(
      process.execPath,
      [COFFER_BIN, 'image-service', 'gc', '--json', '--store', store()],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const gcLines: string[] = []
    const gc = new Promise<{ code: number | null; lines: string[] }>((resolve) => {
      createInterface({ input: gcProcess.stdout! }).on('line', (l) => gcLines.push(l))
      gcProcess.once('exit', (code) => resolve({ code, lines: gcLines }))
    })
    const first = await Promise.race([
      new Promise<string>((resolve) => {
        const poll = setInterval(() => {
          if (gcLines.length) {
            clearInterval(poll)
            resolve(gcLines[0]!)
          }
        }, 20)
      }),
      gc.then(() => 'exited'),
    ])
    expect(first).toBe(JSON.stringify({ waiting: 1 }))
    expect(gcProcess.exitCode).toBeNull()
    proxy.open()
    const pulled = await pulling
    expect(pulled.code, pulled.stderr).toBe(0)
    expect(resultOf(pulled)).toMatchObject({ layersReused: 1, layersUnpacked: 1 })
    expect(await readFile(file('r-full/rootfs/etc/os-release'), 'utf8')).toBe('ID=coffer\n')
    const collected = await gc
    expect(collected.code).toBe(0)
    expect(JSON.parse(collected.lines.at(-1)!)).toEqual({ removed: [] })
    expect(await layersInStore()).toEqual(full.diffIds.map((d) => d.slice(7)).sort())

    // Removing `full` by its image digest lets gc free both layers.
    const digest = String(resultOf(pulled).imageDigest)
    expect((await coffer(['image-service', 'remove', '--store', store(), digest])).code).toBe(0)
    const gc2 = await coffer(['image-service', 'gc', '--json', '--store', store()])
    expect((gc2.json()[0]!.removed as string[]).sort()).toEqual([...full.diffIds].sort())
    const missing = await coffer(['image-service', 'remove', '--store', store(), digest])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/ERR_IMAGE_NOT_FOUND/)
  }, 120_000)

  it('pulling again into the same --rootfs is ERR_IMAGE_ROOTFS_EXISTS before anything is fetched', async () => {
    const before = proxy.paths().length
    const again = await coffer(pullArgs(proxy.host, 'full', 'r-full'))
    expect(again.code).toBe(4)
    expect(again.stderr).toMatch(/ERR_IMAGE_ROOTFS_EXISTS/)
    expect(again.stderr).toContain(file('r-full/rootfs'))
    expect(again.stderr).not.toMatch(/\n\s+at /) // a coded error, not a stack trace
    expect(proxy.paths().length).toBe(before)
    // The earlier rootfs is untouched.
    expect(await readFile(file('r-full/rootfs/app/run.sh'), 'utf8')).toContain('echo hi')
  }, 60_000)
})
