import { createCipheriv, createHmac, randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LayerChecker, type LayerChecks } from '../../../lib/image/layer-checks.js'
import { digestOf } from '../../../lib/oci/digest.js'
import { isCofferError } from '../../../lib/util/errors.js'

const MiB = 1 << 20

/** The tar the checker lets through, fed in the slices it asks for (as the stage job feeds it). */
function run(plan: LayerChecks, blob: Buffer, chunk = 256 * 1024): { tar: Buffer; biggestWrite: number } {
  const c = new LayerChecker(plan)
  const out: Buffer[] = []
  let biggestWrite = 0
  for (let at = 0; at < blob.length;) {
    const piece = blob.subarray(at, Math.min(blob.length, at + chunk))
    for (let p = 0; p < piece.length;) {
      const n = Math.min(c.sliceBytes, piece.length - p)
      let produced = 0
      c.write(piece.subarray(p, p + n), (b) => {
        produced += b.length
        out.push(b)
      })
      biggestWrite = Math.max(biggestWrite, produced)
      p += n
    }
    at += piece.length
  }
  c.end((b) => out.push(b))
  return { tar: Buffer.concat(out), biggestWrite }
}

function encrypt(plain: Buffer): { blob: Buffer; key: Buffer; nonce: Buffer; hmac: Buffer } {
  const key = randomBytes(32)
  const nonce = randomBytes(16)
  const c = createCipheriv('aes-256-ctr', key, nonce)
  const blob = Buffer.concat([c.update(plain), c.final()])
  return { blob, key, nonce, hmac: createHmac('sha256', key).update(blob).digest() }
}

function encryptedPlan(
  plain: Buffer,
  compressed: Buffer,
  diffId?: string,
): { plan: LayerChecks; blob: Buffer } {
  const e = encrypt(compressed)
  return {
    blob: e.blob,
    plan: {
      blob: { digest: digestOf(e.blob), size: e.blob.length },
      compression: 'gzip',
      decryption: {
        key: { key: e.key, nonce: e.nonce, hmac: e.hmac },
        plaintextDigest: digestOf(compressed),
      },
      ...(diffId ? { diffId: diffId as `sha256:${string}` } : {}),
    },
  }
}

const failure = (f: () => unknown): unknown => {
  try {
    f()
  } catch (err) {
    return err
  }
  return undefined
}

describe('LayerChecker', () => {
  const tar = randomBytes(3 * MiB + 123)
  const gz = gzipSync(tar, { level: 1 })

  it('passes an encrypted gzip layer through to its exact tar, whatever the chunking', () => {
    const { plan, blob } = encryptedPlan(tar, gz, digestOf(tar))
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 300_000 }), (chunk) => {
        expect(run(plan, blob, chunk).tar.equals(tar)).toBe(true)
      }),
      { numRuns: 12 },
    )
  })

  it('fails each check with its own code: blob digest, size, HMAC, plaintext digest, gzip, diff_id', () => {
    const { plan, blob } = encryptedPlan(tar, gz, digestOf(tar))
    const flipped = Buffer.from(blob)
    flipped[1000] = flipped[1000]! ^ 1
    // The blob digest as fetched comes first.
    expect(
      isCofferError(
        failure(() => run(plan, flipped)),
        'ERR_OCI_DIGEST_MISMATCH',
      ),
    ).toBe(true)
    // The same flip with the descriptor fixed up: the HMAC catches it.
    const fixed = { ...plan, blob: { digest: digestOf(flipped), size: flipped.length } }
    expect(
      isCofferError(
        failure(() => run(fixed, flipped)),
        'ERR_CRYPT_DECRYPT_FAILED',
      ),
    ).toBe(true)
    // Too long fails as soon as the excess arrives; too short at the end.
    const longer = Buffer.concat([blob, Buffer.from('x')])
    expect(
      isCofferError(
        failure(() => run(plan, longer)),
        'ERR_OCI_SIZE_MISMATCH',
      ),
    ).toBe(true)
    expect(
      isCofferError(
        failure(() => run(plan, blob.subarray(0, -1))),
        'ERR_OCI_SIZE_MISMATCH',
      ),
    ).toBe(true)
    // A wrong recorded plaintext digest, a wrong HMAC.
    const d = plan.decryption!
    const badDigest = { ...plan, decryption: { ...d, plaintextDigest: digestOf(Buffer.from('other')) } }
    expect(
      isCofferError(
        failure(() => run(badDigest, blob)),
        'ERR_CRYPT_DECRYPT_FAILED',
      ),
    ).toBe(true)
    const badMac = { ...plan, decryption: { ...d, key: { ...d.key, hmac: randomBytes(32) } } }
    expect(
      isCofferError(
        failure(() => run(badMac, blob)),
        'ERR_CRYPT_DECRYPT_FAILED',
      ),
    ).toBe(true)
    // A diff_id that does not match the tar.
    const badDiff = { ...plan, diffId: digestOf(Buffer.from('not the tar')) }
    expect(
      isCofferError(
        failure(() => run(badDiff, blob)),
        'ERR_OCI_DIGEST_MISMATCH',
      ),
    ).toBe(true)
    // A truncated gzip stream (whose blob digest matches: a buggy or hostile builder).
    const cut = gz.subarray(0, gz.length - 100)
    const cutPlan: LayerChecks = { blob: { digest: digestOf(cut), size: cut.length }, compression: 'gzip' }
    expect(
      isCofferError(
        failure(() => run(cutPlan, cut)),
        'ERR_OCI_LAYER_INVALID',
      ),
    ).toBe(true)
    const garbage = randomBytes(5000)
    const garbagePlan: LayerChecks = { blob: { digest: digestOf(garbage), size: 5000 }, compression: 'gzip' }
    expect(
      isCofferError(
        failure(() => run(garbagePlan, garbage)),
        'ERR_OCI_LAYER_INVALID',
      ),
    ).toBe(true)
  })

  it('uncompressed layers, and an empty blob', () => {
    const plain: LayerChecks = {
      blob: { digest: digestOf(tar), size: tar.length },
      compression: 'none',
      diffId: digestOf(tar),
    }
    expect(run(plain, tar).tar.equals(tar)).toBe(true)
    const empty = Buffer.alloc(0)
    const emptyPlan: LayerChecks = { blob: { digest: digestOf(empty), size: 0 }, compression: 'none' }
    expect(run(emptyPlan, empty).tar.length).toBe(0)
  })

  it('a gzip bomb never yields more than a few MiB per write', () => {
    // 512 MiB of zeros compress to about 0.5 MiB: 1000:1.
    const zeros = Buffer.alloc(64 * MiB)
    const bomb = gzipSync(Buffer.concat(Array.from({ length: 8 }, () => zeros)), { level: 9 })
    const plan: LayerChecks = { blob: { digest: digestOf(bomb), size: bomb.length }, compression: 'gzip' }
    const c = new LayerChecker(plan)
    let biggest = 0
    let total = 0
    for (let at = 0; at < bomb.length;) {
      const n = Math.min(c.sliceBytes, bomb.length - at)
      let produced = 0
      c.write(bomb.subarray(at, at + n), (b) => (produced += b.length))
      biggest = Math.max(biggest, produced)
      total += produced
      at += n
    }
    c.end((b) => (total += b.length))
    expect(total).toBe(512 * MiB)
    expect(biggest).toBeLessThanOrEqual(5 * MiB)
  })
})
