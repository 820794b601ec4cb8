/**
 * The guest's signature policy and the keys it names, served by the KBS after attestation
 * (image-rs's `kbs:///default/security-policy/test` and `kbs:///default/cosign-public-key/test`):
 * a cosign-signed image in a real registry is accepted; another key, or a policy the KBS does not
 * release, is refused before any layer is fetched.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { trustMaterial } from '../../lib/image/trust-material.js'
import { KbsClient } from '../../lib/kbs/client.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { generateCosignKeyPair, decryptCosignPrivateKey } from '../../lib/sign/cosign-key.js'
import { evaluate } from '../../lib/sign/evaluate.js'
import { openSignedImage } from '../../lib/sign/image-signatures.js'
import { loadRegistriesD } from '../../lib/sign/registries-d.js'
import { signImage } from '../../lib/sign/sign-image.js'
import { createSampleAttester } from '../../plugins/attester/sample/index.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

describe('signature policy and keys from the KBS', () => {
  let work: string
  let reg: TestRegistry
  let kbs: TestKbs
  let image: string
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-trust-'))
    reg = await startRegistry()
    kbs = await startTestKbs()
    await makeSampleLayout(join(work, 'src'), 'v1')
    image = `docker://${reg.host}/app:v1`
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${join(work, 'src')}:v1`, image])
    const { privatePem, publicPem } = await generateCosignKeyPair('pw')
    const access = {
      access: { tlsVerify: false },
      registriesD: await loadRegistriesD(join(work, 'none')),
      forceSigstoreAttachments: true,
    }
    await signImage(
      parseImageName(image),
      { kind: 'cosign', key: await decryptCosignPrivateKey(privatePem, 'pw') },
      access,
    )
    const policyFor = (key: string) =>
      JSON.stringify({
        default: [{ type: 'reject' }],
        transports: {
          docker: {
            [`${reg.host}/app`]: [
              { type: 'sigstoreSigned', keyPath: key, signedIdentity: { type: 'matchRepository' } },
            ],
          },
        },
      })
    await kbs.putResources({
      'default/cosign-public-key/test': publicPem,
      'default/cosign-public-key/other': (await generateCosignKeyPair('x')).publicPem,
      'default/security-policy/test': policyFor('kbs:///default/cosign-public-key/test'),
      'default/security-policy/wrong-key': policyFor('kbs:///default/cosign-public-key/other'),
      'secret/security-policy/test': policyFor('kbs:///default/cosign-public-key/test'),
    })
    await kbs.allowResources(['default/*/*'], 'tee == "sample"')
  }, 120_000)
  afterAll(async () => {
    await kbs?.close()
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  async function check(policyUri: string): Promise<void> {
    const client = new KbsClient({ url: kbs.url, attester: createSampleAttester(() => {}) })
    const trust = trustMaterial(policyUri, client)
    const signed = await openSignedImage(parseImageName(image), {
      access: { tlsVerify: false },
      registriesD: await loadRegistriesD(join(work, 'none')),
      forceSigstoreAttachments: true,
    })
    try {
      await evaluate(await trust.policy(), parseImageName(image), signed.manifest.bytes, signed.signatures, {
        resolveKey: trust.resolveKey,
      })
    } finally {
      await signed.close()
      await client.close()
    }
  }

  it('accepts the image with the policy and key the KBS releases', async () => {
    await expect(check('kbs:///default/security-policy/test')).resolves.toBeUndefined()
  })

  it('refuses with another key, and when the KBS does not release the policy', async () => {
    await expect(check('kbs:///default/security-policy/wrong-key')).rejects.toMatchObject({
      code: 'ERR_SIGN_POLICY_DENIED',
    })
    await expect(check('kbs:///secret/security-policy/test')).rejects.toMatchObject({
      code: 'ERR_KBS_DENIED',
    })
    await expect(check('kbs:///default/security-policy/missing')).rejects.toMatchObject({
      code: 'ERR_KBS_RESOURCE_NOT_FOUND',
    })
  })
})
