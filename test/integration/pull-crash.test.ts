/**
 * kill -9 at random points of `coffer pull` (≥ 20 times): the layer store stays consistent (only
 * committed layers, each with its record; staging left by the dead is swept) and the next pull
 * succeeds with the same rootfs as an uninterrupted one.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer, COFFER_BIN, resultOf } from '../helpers/coffer.js'
import { snapshotTree } from '../helpers/layer-image.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

const KILLS = 20

describe('coffer pull under kill -9', () => {
  let work: string
  let reg: TestRegistry
  let image: string
  const file = (n: string): string => join(work, n)
  const args = (store: string, rootfs: string): string[] => [
    'pull',
    '--json',
    '--tls-verify=false',
    '--insecure-policy',
    '--concurrency',
    '4',
    '--store',
    store,
    '--rootfs',
    rootfs,
    '--rootfs-mode',
    'materialize',
    image,
  ]

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-pull-crash-'))
    reg = await startRegistry()
    await makeSampleLayout(file('src'), 'v1', { layers: 6, layerBytes: 3 << 20 })
    image = `docker://${reg.host}/crash:v1`
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${file('src')}:v1`, image])
  }, 120_000)
  afterAll(async () => {
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it(`survives ${KILLS} kills at random points and then pulls the same rootfs`, async () => {
    const reference = await coffer(args(file('ref-store'), file('ref-rootfs')))
    expect(reference.code, reference.stderr).toBe(0)
    const expected = await snapshotTree(String(resultOf(reference).rootfs))
    const started = Date.now()
    expect((await coffer(args(file('timing-store'), file('timing-rootfs')))).code).toBe(0)
    const full = Date.now() - started

    const store = file('store')
    for (let i = 0; i < KILLS; i++) {
      const child = spawn(process.execPath, [COFFER_BIN, ...args(store, file(`rootfs-${i}`))], {
        stdio: 'ignore',
      })
      const exited = new Promise<void>((r) => child.once('exit', () => r()))
      await new Promise((r) => setTimeout(r, 50 + Math.random() * full))
      child.kill('SIGKILL')
      await exited
    }
    const final = await coffer(args(store, file('rootfs-final')))
    expect(final.code, final.stderr).toBe(0)
    expect(await snapshotTree(String(resultOf(final).rootfs))).toEqual(expected)
    // Only committed layers remain, each with its record; the dead's staging is gone.
    for (const hex of await readdir(join(store, 'layers', 'sha256')))
      expect((await stat(join(store, 'layers', 'sha256', hex, 'layer.json'))).isFile()).toBe(true)
    expect(await readdir(join(store, 'staging'))).toEqual([])
  }, 300_000)
})
