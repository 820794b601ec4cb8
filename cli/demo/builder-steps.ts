/**
 * The demo as the image builder and the KBS operator: a sample image is built, pushed to a local
 * registry and pulled back; keys are generated; a local KBS is started and given the image's
 * key-encryption key, the cosign public key and the guest's signature policy as resources; the image
 * is encrypted for the KBS-held key (and a jwe key, so skopeo can check the format), pushed, and
 * signed with cosign.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encryptionStep } from '../../lib/crypt/encrypt-step.js'
import { KbsAdminClient } from '../../lib/kbs/admin-client.js'
import { parseResourceUri } from '../../lib/kbs/resource-uri.js'
import { copyImage } from '../../lib/oci/copy.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import type { LayerTransform } from '../../lib/oci/layer-transform.js'
import { openImageDestination, openImageSource } from '../../lib/oci/open-image.js'
import { CofferError } from '../../lib/util/errors.js'
import type { Io } from '../../lib/util/io.js'
import { generateDemoKeys, type DemoKeys } from './demo-keys.js'
import type { AttesterPlan } from './guest-attester.js'
import { startLocalKbs } from './local-kbs.js'
import { startLocalRegistry } from './local-registry.js'
import { buildSampleImage } from './sample-image.js'
import type { DemoSession } from './session.js'

/** Where the KBS holds what the guest needs; the guest knows only these URIs. */
export const KEK_URI = 'kbs:///demo/image-kek/sample'
export const COSIGN_KEY_URI = 'kbs:///demo/cosign-key/sample'
export const POLICY_URI = 'kbs:///demo/security-policy/sample'

export interface BuiltImage {
  /** The plaintext image's manifest digest. */
  digest: string
  /** The encrypted, signed image in the registry. */
  encryptedRef: string
  encryptedDigest: string
  /** The plaintext layers' digests. */
  layers: string[]
  registryHost: string
  kbsUrl: string
  admin: KbsAdminClient
  keys: DemoKeys
  /** registries.d for cosign attachments, shared by the signer and the guest. */
  registriesD: string
}

export async function runBuilder(s: DemoSession, plan: AttesterPlan): Promise<BuiltImage> {
  const { steps, work, ctx } = s
  const built = await steps.run(
    'build',
    'build a sample image into an OCI layout',
    () => buildSampleImage(join(work, 'build'), 'sample'),
    (d) => d.digest,
  )
  await mkdir(join(work, 'registry'), { recursive: true })
  const registry = await steps.run(
    'registry',
    'start a local registry (docker-registry)',
    async () => {
      const r = await startLocalRegistry(join(work, 'registry'))
      s.cleanup.addChild(`registry (pid ${r.pid})`, r.pid, () => r.stop())
      s.started('registry', r.pid)
      return r
    },
    (r) => `http://${r.host} (pid ${r.pid})`,
  )
  const host = registry.host
  const plainRef = `docker://${host}/coffer/sample:1.0`
  const encryptedRef = `docker://${host}/coffer/sample:encrypted`

  await steps.run(
    'copy',
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

  const keys = await steps.run(
    'keys',
    'generate keys: KBS admin (Ed25519), image KEK (AES-256), jwe pair (EC P-256), cosign pair',
    () => generateDemoKeys(join(work, 'keys')),
    (k) => k.dir,
  )

  const kbs = await steps.run(
    'kbs',
    `start a local KBS (coffer kbs serve) with the ${plan.name} verifier`,
    async () => {
      const k = await startLocalKbs(work, join(keys.dir, 'admin.pub'), plan.name)
      s.cleanup.add('KBS', () => k.close())
      return k
    },
    (k) => [
      `${k.url} (log: ${k.logFile})`,
      ...(plan.name === 'sample'
        ? ['⚠ the sample TEE is accepted: any client can attest without a TEE']
        : []),
    ],
  )
  const admin = new KbsAdminClient({ url: kbs.url, adminKey: keys.admin })
  s.cleanup.add('KBS admin client', () => admin.close())

  const registriesD = join(work, 'registries.d')
  await steps.run(
    'kbs-resources',
    'give the KBS the image KEK, the cosign public key and the guest signature policy (admin API)',
    async () => {
      // containers/image reads cosign signatures only where registries.d enables sigstore attachments.
      await mkdir(registriesD, { recursive: true })
      await writeFile(
        join(registriesD, 'default.yaml'),
        'default-docker:\n  use-sigstore-attachments: true\n',
      )
      // The guest accepts nothing but this repository, cosign-signed by the demo's key.
      const policy = {
        default: [{ type: 'reject' }],
        transports: {
          docker: {
            [`${host}/coffer/sample`]: [
              {
                type: 'sigstoreSigned',
                keyPath: COSIGN_KEY_URI,
                signedIdentity: { type: 'matchRepository' },
              },
            ],
          },
        },
      }
      await writeFile(join(work, 'policy.json'), `${JSON.stringify(policy, null, 2)}\n`)
      await admin.putResource(parseResourceUri(KEK_URI), keys.kek, ctx)
      await admin.putResource(parseResourceUri(COSIGN_KEY_URI), Buffer.from(keys.cosignPub), ctx)
      await admin.putResource(parseResourceUri(POLICY_URI), Buffer.from(JSON.stringify(policy)), ctx)
    },
    () => [KEK_URI, `${COSIGN_KEY_URI}, ${POLICY_URI}`],
  )

  const { keyWrappers } = await import('../../plugins/keywraps.js')
  const { kbsKekEntry, KBS_KEKS } = await import('../../plugins/keywrap/kbs/index.js')
  const layers = await layerDigests(`oci:${join(work, 'build')}:sample`, ctx)
  const encryptedDigest = await steps.run(
    'encrypt',
    `encrypt it for ${KEK_URI} and jwe:demo.pub, and push (coffer encrypt)`,
    async () => {
      const digest = await copy(
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
      )
      const inRegistry = await layerDigests(encryptedRef, ctx)
      if (inRegistry.some((d) => layers.includes(d)))
        throw new CofferError('ERR_INTERNAL', 'the registry holds a plaintext layer')
      // A local copy of the encrypted image too: skopeo can check it offline.
      await copy(encryptedRef, `oci:${join(work, 'encrypted')}:sample`, ctx)
      return digest
    },
    (d) => [d, `the registry holds only ciphertext: none of the ${layers.length} plaintext layers`],
  )

  const { signImage } = await import('../../lib/sign/sign-image.js')
  const { loadRegistriesD } = await import('../../lib/sign/registries-d.js')
  await steps.run(
    'sign',
    'sign the encrypted manifest with cosign (coffer sign --key cosign.key)',
    async () =>
      (
        await signImage(
          parseImageName(encryptedRef),
          { kind: 'cosign', key: keys.cosignKey },
          { access: {}, registriesD: await loadRegistriesD(registriesD) },
          { signal: ctx.signal },
        )
      ).storedAt,
    (at) => at,
  )
  return {
    digest: built.digest,
    encryptedRef,
    encryptedDigest,
    layers,
    registryHost: host,
    kbsUrl: kbs.url,
    admin,
    keys,
    registriesD,
  }
}

async function copy(from: string, to: string, io: Io, layerTransform?: LayerTransform): Promise<string> {
  const src = await openImageSource(parseImageName(from), {}, io)
  try {
    const dest = await openImageDestination(parseImageName(to), {})
    try {
      const result = await copyImage(src, dest, {
        ...(io.signal ? { signal: io.signal } : {}),
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
async function layerDigests(name: string, io: Io): Promise<string[]> {
  const src = await openImageSource(parseImageName(name), {}, io)
  try {
    const doc = await src.getManifest(undefined, io)
    if (doc.kind !== 'manifest') throw new CofferError('ERR_INTERNAL', `${name} should be a single manifest`)
    return doc.manifest.layers.map((l) => l.digest)
  } finally {
    await src.close()
  }
}
