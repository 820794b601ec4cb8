import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { copyImage } from '../../lib/oci/copy.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { openImageDestination, openImageSource } from '../../lib/oci/open-image.js'
import { CofferError } from '../../lib/util/errors.js'
import { buildSampleImage } from '../demo/sample-image.js'
import { startLocalRegistry, type LocalRegistry } from '../demo/local-registry.js'
import type { CommandContext } from '../run.js'

/**
 * `coffer demo`: the whole story on embedded defaults. Today: build a sample image into an OCI
 * layout, start a local registry, push it, pull it back, and check that every digest survived.
 * The demo grows with each capability (encryption, signing, KBS, guest pull, encrypted volumes).
 * Everything it starts it stops, also when interrupted.
 */
export async function demoCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const keep = typeof opts.workdir === 'string'
  const work = keep ? resolve(opts.workdir as string) : await mkdtemp(join(tmpdir(), 'coffer-demo-'))
  await mkdir(work, { recursive: true })
  let registry: LocalRegistry | undefined
  const step = async <T>(
    title: string,
    work: () => Promise<T>,
    detail?: (value: T) => string,
  ): Promise<T> => {
    const started = performance.now()
    const value = await work()
    const ms = Math.round(performance.now() - started)
    ctx.say(`✔ ${title}${detail ? `: ${detail(value)}` : ''} (${ms} ms)`)
    ctx.emit({ step: title, ms, ...(detail ? { detail: detail(value) } : {}) })
    return value
  }
  try {
    ctx.say(`coffer demo: working in ${work}`)
    const built = await step(
      'build a sample image into an OCI layout',
      () => buildSampleImage(join(work, 'build'), 'sample'),
      (d) => d.digest,
    )
    await mkdir(join(work, 'registry'), { recursive: true })
    registry = await step(
      'start a local registry (docker-registry)',
      () => startLocalRegistry(join(work, 'registry')),
      (r) => `http://${r.host}`,
    )
    const host = registry.host

    const pushed = await step(
      'push it: coffer copy oci:… docker://…',
      () => copy(`oci:${join(work, 'build')}:sample`, `docker://${host}/coffer/sample:1.0`, ctx),
      (r) => r,
    )
    const pulled = await step(
      'pull it back: coffer copy docker://… oci:…',
      () => copy(`docker://${host}/coffer/sample:1.0`, `oci:${join(work, 'pulled')}:sample`, ctx),
      (r) => r,
    )
    await step(
      'inspect the image in the registry',
      async () => {
        const src = await openImageSource(parseImageName(`docker://${host}/coffer/sample:1.0`), {}, ctx)
        try {
          const doc = await src.getManifest(undefined, ctx)
          if (doc.kind !== 'manifest')
            throw new CofferError('ERR_INTERNAL', 'the sample image should be a single manifest')
          return `${doc.manifest.layers.length} layers, ${doc.manifest.layers.reduce((n, l) => n + l.size, 0)} bytes, config ${doc.manifest.config.digest.slice(0, 19)}…`
        } finally {
          await src.close()
        }
      },
      (s) => s,
    )
    if (pushed !== built.digest || pulled !== built.digest) {
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        `digests changed on the way: built ${built.digest}, pushed ${pushed}, pulled ${pulled}`,
      )
    }
    ctx.say(`✔ every digest survived the round trip: ${built.digest}`)
    ctx.emit({ result: { digest: built.digest, registry: host, workdir: keep ? work : undefined } })
  } finally {
    await registry?.stop()
    if (!keep) await rm(work, { recursive: true, force: true })
  }
}

async function copy(from: string, to: string, ctx: CommandContext): Promise<string> {
  const src = await openImageSource(parseImageName(from), {}, ctx)
  try {
    const dest = await openImageDestination(parseImageName(to), {})
    try {
      const result = await copyImage(src, dest, { signal: ctx.signal })
      return result.digest
    } finally {
      await dest.close()
    }
  } finally {
    await src.close()
  }
}
