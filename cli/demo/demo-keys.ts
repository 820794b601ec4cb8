/**
 * The demo's keys, written under one private directory: the KBS admin key (Ed25519; only its
 * public half is on disk, where the KBS reads it), the image's key-encryption key (AES-256, held by
 * the KBS), a jwe pair (EC P-256, so skopeo can decrypt the demo's image too) and a cosign pair
 * (its private key encrypted with a random password that never leaves memory).
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '../../lib/crypt/keys.js'

export interface DemoKeys {
  dir: string
  admin: KeyObject
  kek: Buffer
  jwe: { publicPem: string; privatePem: string }
  /** The cosign private key (the file holds it encrypted with a password that was never stored). */
  cosignKey: KeyObject
  cosignPub: string
}

export async function generateDemoKeys(dir: string): Promise<DemoKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const admin = generateKeyPairSync('ed25519')
  await writeFile(join(dir, 'admin.pub'), admin.publicKey.export({ type: 'spki', format: 'pem' }))
  const kek = randomBytes(32)
  await writeFile(join(dir, 'image.kek'), kek, { mode: 0o600 })
  const jwe = await generateKeyPair('ec', { curve: 'P-256' })
  await writeFile(join(dir, 'demo.key'), jwe.privatePem, { mode: 0o600 })
  await writeFile(join(dir, 'demo.pub'), jwe.publicPem)
  // The signing key stays in memory as generated; only the file copy is encrypted (one scrypt, not two).
  const { encryptCosignPrivateKey } = await import('../../lib/sign/cosign-key.js')
  const cosign = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const cosignPub = cosign.publicKey.export({ format: 'pem', type: 'spki' }).toString()
  const password = randomBytes(16).toString('hex')
  const pkcs8 = cosign.privateKey.export({ format: 'der', type: 'pkcs8' })
  await writeFile(join(dir, 'cosign.key'), await encryptCosignPrivateKey(pkcs8, password), { mode: 0o600 })
  pkcs8.fill(0)
  await writeFile(join(dir, 'cosign.pub'), cosignPub)
  return {
    dir,
    admin: admin.privateKey,
    kek,
    jwe: { publicPem: jwe.publicPem, privatePem: jwe.privatePem },
    cosignKey: cosign.privateKey,
    cosignPub,
  }
}
