import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { decryptionStep } from '../../lib/crypt/decrypt-step.js'
import { encryptionStep } from '../../lib/crypt/encrypt-step.js'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { KbsAdminClient } from '../../lib/kbs/admin-client.js'
import { KbsClient } from '../../lib/kbs/client.js'
import { parseKbsConfig } from '../../lib/kbs/config.js'
import { parseResourceUri } from '../../lib/kbs/resource-uri.js'
import { startKbs, type RunningKbs } from '../../lib/kbs/serve.js'
import { copyImage } from '../../lib/oci/copy.js'
import type { LayerTransform } from '../../lib/oci/layer-transform.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { openImageDestination, openImageSource } from '../../lib/oci/open-image.js'
import { CofferError } from '../../lib/util/errors.js'
import { buildSampleImage } from '../demo/sample-image.js'
import { startLocalRegistry, type LocalRegistry } from '../demo/local-registry.js'
import type { CommandContext } from '../run.js'

const KEK_URI = 'kbs:///demo/image-kek/sample'

/** The demo's resource policy: only guests attested as the sample TEE get the demo's keys. */
const DEMO_POLICY = {
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [
    { name: 'demo guests get demo keys', effect: 'allow', resources: ['demo/*/*'], when: 'tee == "sample"' },
  ],
}

/**
 * `coffer demo`: the whole story on embedded defaults, as a builder and then as a guest.
 *
 *  build side: a sample image is pushed to a local registry and pulled back (digests survive); a
 *  local KBS holds the image's key-encryption key under kbs:///demo/image-kek/sample and a policy;
 *  the image is encrypted for that key (and a jwe key pair, so skopeo can check the format), pushed
 *  and signed with cosign.
 *  guest side: the signature is checked against a policy.json before any layer is fetched; then the
 *  guest attests to the KBS (the sample attester, with its warning: this machine has no TEE),
 *  receives the key-encryption key, and pulls and decrypts the image.
 *
 * Everything it starts (registry, KBS) it stops, also when interrupted; without --workdir its files go too.
 */
export async function demoCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const keep = typeof opts.workdir === 'string'
  const work = keep ? resolve(opts.workdir as string) : await mkdtemp(join(tmpdir(), 'coffer-demo-'))
  await mkdir(work, { recursive: true })
  let registry: LocalRegistry | undefined
  let kbs: RunningKbs | undefined
  const closers: (() => Promise<void>)[] = []
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
    ctx.say(`coffer demo: working in ${work}\n\n— as the image builder —`)
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
    const plainRef = `docker://${host}/coffer/sample:1.0`
    const encryptedRef = `docker://${host}/coffer/sample:encrypted`

    await step(
      'push it and pull it back (coffer copy): every digest survives',
      async () => {
        const pushed = await copy(`oci:${join(work, 'build')}:sample`, plainRef, ctx)
        const pulled = await copy(plainRef, `oci:${join(work, 'pulled')}:sample`, ctx)
        if (pushed !== built.digest || pulled !== built.digest)
          throw new CofferError(
            'ERR_OCI_DIGEST_MISMATCH',
            `digests changed: built ${built.digest}, pushed ${pushed}, pulled ${pulled}`,
          )
        return pulled
      },
      (d) => d,
    )

    // === keys: admin (KBS), the image KEK (held by the KBS), a jwe pair, a cosign pair
    const keys = await step(
      'generate keys: KBS admin (Ed25519), image KEK (AES-256), jwe pair (EC P-256), cosign pair',
      async () => {
        const dir = join(work, 'keys')
        await mkdir(dir, { recursive: true, mode: 0o700 })
        const admin = generateKeyPairSync('ed25519')
        await writeFile(join(dir, 'admin.pub'), admin.publicKey.export({ type: 'spki', format: 'pem' }))
        const kek = randomBytes(32)
        await writeFile(join(dir, 'image.kek'), kek, { mode: 0o600 })
        const jwe = await generateKeyPair('ec', { curve: 'P-256' })
        await writeFile(join(dir, 'demo.key'), jwe.privatePem, { mode: 0o600 })
        await writeFile(join(dir, 'demo.pub'), jwe.publicPem)
        const { generateCosignKeyPair, decryptCosignPrivateKey } =
          await import('../../lib/sign/cosign-key.js')
        const password = randomBytes(16).toString('hex')
        const cosign = await generateCosignKeyPair(password)
        await writeFile(join(dir, 'cosign.key'), cosign.privatePem, { mode: 0o600 })
        await writeFile(join(dir, 'cosign.pub'), cosign.publicPem)
        return {
          admin: admin.privateKey,
          kek,
          jwe,
          cosignKey: await decryptCosignPrivateKey(cosign.privatePem, password),
          cosignPub: cosign.publicPem,
        }
      },
      () => join(work, 'keys'),
    )

    kbs = await step(
      'start a local KBS (coffer kbs serve; the sample TEE allowed, as this machine has no TEE)',
      async () => {
        const { createVerifier, verifierNames, openKbsStore } = await import('../../plugins/index.js')
        const config = parseKbsConfig(
          {
            data_dir: join(work, 'kbs'),
            http: { port: 0 },
            attestation: { allow_sample: true, verifiers: ['sample'] },
            admin: { public_keys: [join(work, 'keys', 'admin.pub')] },
            log: { level: 'info' },
          },
          work,
        )
        const log = createWriteStream(join(work, 'kbs.log'))
        closers.push(() => new Promise((r) => log.end(r)))
        return startKbs(config, { verifierNames, createVerifier, createStore: openKbsStore }, 'coffer demo', {
          logStream: log,
        })
      },
      (k) => `${k.url} (log: ${join(work, 'kbs.log')})`,
    )
    const admin = new KbsAdminClient({ url: kbs.url, adminKey: keys.admin })
    closers.push(() => admin.close())
    await step(
      `register the KEK as ${KEK_URI} and the resource policy (admin API)`,
      async () => {
        await admin.putResource(parseResourceUri(KEK_URI), keys.kek, ctx)
        await admin.setPolicy(JSON.stringify(DEMO_POLICY), ctx)
      },
      () => `allow when ${DEMO_POLICY.rules[0]!.when}`,
    )

    const { keyWrappers } = await import('../../plugins/index.js')
    const { kbsKekEntry, KBS_KEKS } = await import('../../plugins/keywrap/kbs/index.js')
    const encrypted = await step(
      `encrypt it for ${KEK_URI} and jwe:demo.pub, and push (coffer encrypt)`,
      () =>
        copy(
          `oci:${join(work, 'build')}:sample`,
          encryptedRef,
          ctx,
          encryptionStep({
            wrappers: keyWrappers(),
            config: {
              pubkeys: [Buffer.from(keys.jwe.publicPem)],
              [KBS_KEKS]: [kbsKekEntry(KEK_URI, keys.kek)],
            },
          }),
        ),
      (d) => d,
    )
    // Keep a local copy of the encrypted image too (skopeo can check it offline).
    await copy(encryptedRef, `oci:${join(work, 'encrypted')}:sample`, ctx)

    const { signImage } = await import('../../lib/sign/sign-image.js')
    const { loadRegistriesD } = await import('../../lib/sign/registries-d.js')
    await mkdir(join(work, 'registries.d'), { recursive: true })
    const signatureAccess = {
      access: {},
      registriesD: await loadRegistriesD(join(work, 'registries.d')),
      forceSigstoreAttachments: true,
    }
    await step(
      'sign the encrypted manifest with cosign (coffer sign --key cosign.key)',
      async () =>
        (
          await signImage(
            parseImageName(encryptedRef),
            { kind: 'cosign', key: keys.cosignKey },
            signatureAccess,
            { signal: ctx.signal },
          )
        ).storedAt,
      (s) => s,
    )

    ctx.say('\n— as the guest, in the TEE —')
    await step(
      'verify the signature against policy.json before fetching any layer (coffer verify)',
      async () => {
        const { evaluate } = await import('../../lib/sign/evaluate.js')
        const { openSignedImage } = await import('../../lib/sign/image-signatures.js')
        const { loadPolicy } = await import('../../lib/sign/policy.js')
        // What the guest is given (here a file; in a TEE a kbs:/// resource): reject all but this repository, cosign-signed.
        const policyFile = {
          default: [{ type: 'reject' }],
          transports: {
            docker: {
              [`${host}/coffer/sample`]: [
                {
                  type: 'sigstoreSigned',
                  keyPath: join(work, 'keys', 'cosign.pub'),
                  signedIdentity: { type: 'matchRepository' },
                },
              ],
            },
          },
        }
        await writeFile(join(work, 'policy.json'), `${JSON.stringify(policyFile, null, 2)}\n`)
        const policy = await loadPolicy(join(work, 'policy.json'))
        const signed = await openSignedImage(parseImageName(encryptedRef), signatureAccess, ctx)
        try {
          await evaluate(
            policy as never,
            parseImageName(encryptedRef),
            signed.manifest.bytes,
            signed.signatures,
            { signal: ctx.signal },
          )
          return signed.manifest.digest
        } finally {
          await signed.close()
        }
      },
      (d) => `accepted ${d} (policy: ${join(work, 'policy.json')})`,
    )

    const { createSampleAttester } = await import('../../plugins/attester/sample/index.js')
    const { createKbsKeyWrapper } = await import('../../plugins/keywrap/kbs/index.js')
    const warnings: string[] = []
    const guest = new KbsClient({ url: kbs.url, attester: createSampleAttester((w) => warnings.push(w)) })
    closers.push(() => guest.close())
    await step(
      'attest to the KBS (sample attester: no TEE on this machine) and receive a token',
      () => guest.token(ctx),
      (t) => `EAR token, ${t.length} bytes`,
    )
    if (warnings.length) ctx.say(`  ⚠ ${warnings[0]!.replace(/^coffer: WARNING: /, '')}`)
    const decrypted = await step(
      `pull and decrypt: the KEK comes from the KBS (${KEK_URI}), encrypted to this guest's session key`,
      () =>
        copy(
          encryptedRef,
          `oci:${join(work, 'decrypted')}:sample`,
          ctx,
          decryptionStep({
            wrappers: keyWrappers().map((w) =>
              w.name === 'kbs' ? createKbsKeyWrapper((kid, io) => guest.getResource(kid, io)) : w,
            ),
            config: {},
          }),
        ),
      (d) => d,
    )
    const original = await layerDigests(`oci:${join(work, 'build')}:sample`, ctx)
    const afterDecrypt = await layerDigests(`oci:${join(work, 'decrypted')}:sample`, ctx)
    const inRegistry = await layerDigests(encryptedRef, ctx)
    if (afterDecrypt.join() !== original.join() || inRegistry.some((d) => original.includes(d)))
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        'the decrypted layers differ from the originals, or the registry holds plaintext',
      )
    ctx.say(
      `✔ the registry holds only ciphertext; the guest restored every layer: ${afterDecrypt.length} layers`,
    )
    ctx.emit({
      result: {
        digest: built.digest,
        encrypted,
        decrypted,
        layers: original,
        registry: host,
        kbs: kbs.url,
        workdir: keep ? work : undefined,
      },
    })
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {})
    await kbs?.close()
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
