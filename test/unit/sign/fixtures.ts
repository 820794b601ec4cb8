/**
 * In-memory signing fixtures for the evaluator tests: OpenPGP keys made by OpenPGP.js, cosign
 * (P-256) keys made by node:crypto, and signatures over arbitrary claims, so each test can build
 * exactly the signature it needs (right, wrong key, wrong digest, wrong identity, tampered).
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { generateKey, type PrivateKey } from 'openpgp'
import { buildPayload, COSIGN_SIGNATURE_TYPE, SIMPLE_SIGNING_TYPE } from '../../../lib/sign/payload.js'
import { signCosignPayload } from '../../../lib/sign/cosign-key.js'
import { createSimpleSignature } from '../../../lib/sign/simple-signing.js'
import {
  SIGSTORE_PAYLOAD_MEDIA_TYPE,
  SIGSTORE_SIGNATURE_ANNOTATION,
  type Signature,
} from '../../../lib/sign/signature.js'

export interface GpgFixture {
  readonly key: PrivateKey
  /** Binary public keyring. */
  readonly publicKeyring: Uint8Array
  readonly armoredPublic: string
  readonly fingerprint: string
}

export async function gpgKey(email: string): Promise<GpgFixture> {
  const { privateKey, publicKey } = await generateKey({ userIDs: [{ email }], format: 'object' })
  return {
    key: privateKey,
    publicKeyring: publicKey.write(),
    armoredPublic: publicKey.armor(),
    fingerprint: privateKey.getFingerprint().toUpperCase(),
  }
}

export interface CosignFixture {
  readonly key: KeyObject
  readonly publicPem: Buffer
}

export function cosignKey(): CosignFixture {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { key: privateKey, publicPem: Buffer.from(publicKey.export({ format: 'pem', type: 'spki' })) }
}

export const manifestBytes = (name: string): Buffer =>
  Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', name }),
  )

export const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

export async function simpleSig(k: GpgFixture, ref: string, digest: string): Promise<Signature> {
  const payload = buildPayload(SIMPLE_SIGNING_TYPE, ref, digest, { creator: 'test', timestamp: 1700000000 })
  return { kind: 'simple-signing', blob: await createSimpleSignature(payload, k.key) }
}

export function sigstoreSig(
  k: CosignFixture,
  ref: string,
  digest: string,
  payloadOverride?: Buffer,
): Signature {
  const payload = buildPayload(COSIGN_SIGNATURE_TYPE, ref, digest)
  return {
    kind: 'sigstore',
    mimeType: SIGSTORE_PAYLOAD_MEDIA_TYPE,
    payload: payloadOverride ?? payload,
    annotations: { [SIGSTORE_SIGNATURE_ANNOTATION]: signCosignPayload(payload, k.key) },
  }
}
