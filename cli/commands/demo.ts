import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { decryptionStep } from '../../lib/crypt/decrypt-step.js'
import { encryptionStep } from '../../lib/crypt/encrypt-step.js'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { copyImage } from '../../lib/oci/copy.js'
import type { LayerTransform } from '../../lib/oci/layer-transform.js'
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

    // === encryption: the same image, its layers encrypted for a key pair (ocicrypt format)
    const keys = await step(
      'generate an encryption key pair (EC P-256)',
      async () => {
        const pair = await generateKeyPair('ec', { curve: 'P-256' })
        await mkdir(join(work, 'keys'), { recursive: true, mode: 0o700 })
        await writeFile(join(work, 'keys', 'demo.key'), pair.privatePem, { mode: 0o600 })
        await writeFile(join(work, 'keys', 'demo.pub'), pair.publicPem)
        return pair
      },
      () => `${join(work, 'keys', 'demo.key')} and demo.pub`,
    )
    const { keyWrappers } = await import('../../plugins/index.js')
    const encrypted = await step(
      'encrypt it for that key: coffer encrypt --encryption-key jwe:demo.pub oci:… oci:…',
      () =>
        copy(
          `oci:${join(work, 'build')}:sample`,
          `oci:${join(work, 'encrypted')}:sample`,
          ctx,
          encryptionStep({
            wrappers: keyWrappers(),
            config: { pubkeys: [Buffer.from(keys.publicPem)] },
          }),
        ),
      (d) => d,
    )
    await step(
      'push the encrypted image: coffer copy oci:… docker://…',
      () => copy(`oci:${join(work, 'encrypted')}:sample`, `docker://${host}/coffer/sample:encrypted`, ctx),
      (d) => d,
    )
    const decrypted = await step(
      'pull and decrypt it: coffer decrypt --decryption-key demo.key',
      () =>
        copy(
          `docker://${host}/coffer/sample:encrypted`,
          `oci:${join(work, 'decrypted')}:sample`,
          ctx,
          decryptionStep({
            wrappers: keyWrappers(),
            config: { privkeys: [Buffer.from(keys.privatePem)], privkeysPasswords: [Buffer.alloc(0)] },
          }),
        ),
      (d) => d,
    )
    const original = await layerDigests(`oci:${join(work, 'build')}:sample`, ctx)
    const afterDecrypt = await layerDigests(`oci:${join(work, 'decrypted')}:sample`, ctx)
    const inRegistry = await layerDigests(`docker://${host}/coffer/sample:encrypted`, ctx)
    if (afterDecrypt.join() !== original.join() || inRegistry.some((d) => original.includes(d))) {
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        'the decrypted layers differ from the originals, or the registry holds plaintext',
      )
    }
    ctx.say(
      `✔ the registry holds only ciphertext; decryption restored every layer: ${afterDecrypt.length} layers`,
    )
    ctx.emit({
      result: {
        digest: built.digest,
        encrypted,
        decrypted,
        layers: original,
        registry: host,
        workdir: keep ? work : undefined,
      },
    })
  } finally {
    await registry?.stop()
    if (!keep) await rm(work, { recursive: true, force: true })
  }
}

async function copy(
  from: string,
  to: string,
  ctx: CommandContext,
  layerTransform?: LayerTransform,
): Promise<string> {
  const src = await openImageSource(parseImageName(from), {}, ctx)
  try {
    const dest = await openImageDestination(parseImageName(to), {})
    try {
      const result = await copyImage(src, dest, {
        signal: ctx.signal,
        ...(layerTransform ? { layerTransform } : {}),
      })
      return result.digest
    } finally {
      await dest.close()
    }
  } finally {
    await src.close()
  }
}

/** The layer digests of a single-manifest image. */
async function layerDigests(name: string, ctx: CommandContext): Promise<string[]> {
  const src = await openImageSource(parseImageName(name), {}, ctx)
  try {
    const doc = await src.getManifest(undefined, ctx)
    if (doc.kind !== 'manifest') throw new CofferError('ERR_INTERNAL', `${name} should be a single manifest`)
    return doc.manifest.layers.map((l) => l.digest)
  } finally {
    await src.close()
  }
}
