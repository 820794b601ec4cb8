/**
 * Issue 7's "memory bounded": a pull's peak RSS does not grow with the layer. The same one-layer
 * image shape at 1 MiB and at 256 MiB (incompressible, skopeo-encrypted for a jwe key) is pulled by
 * the real CLI from a real registry, through the layer worker threads, and the two peaks compared.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBenchImage } from '../../bench/image.js'
import { measure } from '../../bench/measure.js'
import { cofferPullArgv } from '../../bench/pull.js'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { COFFER_BIN } from '../helpers/coffer.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { skopeo } from '../helpers/skopeo.js'

const MiB = 1 << 20

describe('coffer pull memory', () => {
  let work: string
  let reg: TestRegistry
  const sizes = [1, 256] as const

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-pull-memory-'))
    reg = await startRegistry()
    const pair = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(join(work, 'k.key'), pair.privatePem, { mode: 0o600 })
    await writeFile(join(work, 'k.pub'), pair.publicPem)
    for (const mib of sizes) {
      const image = await ensureBenchImage(join(work, 'images'), {
        layers: 1,
        layerBytes: mib * MiB,
        gzipLevel: 1,
      })
      await skopeo([
        'copy',
        '--dest-tls-verify=false',
        '--encryption-key',
        `jwe:${join(work, 'k.pub')}`,
        `oci:${image.dir}:${image.tag}`,
        `docker://${reg.host}/mem:${mib}`,
      ])
    }
  }, 180_000)
  afterAll(async () => {
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('peaks within a few MiB for a 1 MiB and a 256 MiB layer', async () => {
    const peak: Record<number, number> = {}
    for (const mib of sizes) {
      const run = await measure(
        process.execPath,
        cofferPullArgv(COFFER_BIN, {
          key: join(work, 'k.key'),
          store: join(work, `store-${mib}`),
          rootfs: join(work, `rootfs-${mib}`),
          ref: `docker://${reg.host}/mem:${mib}`,
        }),
      )
      expect(run.exitCode, run.stderr).toBe(0)
      peak[mib] = run.peakRssKiB / 1024
    }
    const [small, big] = [peak[1]!, peak[256]!]
    expect(
      big - small,
      `peak RSS ${small.toFixed(0)} MiB (1 MiB layer), ${big.toFixed(0)} MiB (256 MiB)`,
    ).toBeLessThan(40)
    expect(big).toBeLessThan(150)
  }, 120_000)
})
