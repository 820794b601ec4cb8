import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { CofferError } from '../util/errors.js'

/** A content digest `<algorithm>:<encoded>` as the OCI image spec defines it. */
export type Digest = `${string}:${string}`

export type DigestAlgorithm = 'sha256' | 'sha512'

const ENCODED_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 }

/** Parses and validates a digest string; only sha256 and sha512 are accepted, lowercase hex. */
export function parseDigest(value: string): { algorithm: DigestAlgorithm; encoded: string; digest: Digest } {
  const i = value.indexOf(':')
  const algorithm = value.slice(0, i)
  const encoded = value.slice(i + 1)
  if (i <= 0 || !(algorithm in ENCODED_LENGTH)) {
    throw new CofferError('ERR_OCI_DIGEST_INVALID', `unsupported or malformed digest "${truncate(value)}"`)
  }
  const length = ENCODED_LENGTH[algorithm as DigestAlgorithm]
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw new CofferError(
      'ERR_OCI_DIGEST_INVALID',
      `digest "${truncate(value)}" must be ${algorithm}: followed by ${length} lowercase hex characters`,
    )
  }
  return { algorithm: algorithm as DigestAlgorithm, encoded, digest: value as Digest }
}

export function isDigest(value: string): value is Digest {
  try {
    parseDigest(value)
    return true
  } catch {
    return false
  }
}

/** Digest of bytes held in memory (manifests, configs). */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`
}

/** An incremental digester for streamed content. */
export class Digester {
  private readonly hash: Hash
  private bytes = 0
  constructor(readonly algorithm: DigestAlgorithm = 'sha256') {
    this.hash = createHash(algorithm)
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
  }
  get size(): number {
    return this.bytes
  }
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}`
  }
}

/**
 * Content checked against its descriptor as it streams by (containers/image
 * `digesting_reader.go`): `update` fails once more than `expectedSize` bytes arrived, so an
 * oversized or endless body is refused as soon as it goes past the promised length; `verify`, at
 * the end, fails on a short body or a digest mismatch. Until `verify` passed, the content is
 * untrusted.
 */
export class DigestCheck {
  private readonly digester: Digester
  constructor(
    readonly expected: Digest,
    readonly expectedSize?: number,
  ) {
    this.digester = new Digester(parseDigest(expected).algorithm)
  }
  get size(): number {
    return this.digester.size
  }
  update(chunk: Uint8Array): void {
    this.digester.update(chunk)
    if (this.expectedSize !== undefined && this.expectedSize >= 0 && this.digester.size > this.expectedSize)
      throw new CofferError(
        'ERR_OCI_SIZE_MISMATCH',
        `content of ${this.expected} is longer than the expected ${this.expectedSize} bytes`,
      )
  }
  verify(): void {
    if (this.expectedSize !== undefined && this.expectedSize >= 0 && this.digester.size !== this.expectedSize)
      throw new CofferError(
        'ERR_OCI_SIZE_MISMATCH',
        `content of ${this.expected} has ${this.digester.size} bytes, expected ${this.expectedSize}`,
      )
    const actual = this.digester.digest()
    if (actual !== this.expected)
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        `content digest ${actual} does not match the expected ${this.expected}`,
      )
  }
}

/** A pass-through stream that runs a `DigestCheck`: it fails at EOF on a mismatch, early on excess. */
export function verifyingStream(
  expected: Digest,
  expectedSize?: number,
): Transform & { readonly size: number } {
  const check = new DigestCheck(expected, expectedSize)
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        check.update(chunk)
      } catch (err) {
        return cb(err as Error)
      }
      cb(null, chunk)
    },
    flush(cb: TransformCallback) {
      try {
        check.verify()
      } catch (err) {
        return cb(err as Error)
      }
      cb()
    },
  })
  Object.defineProperty(stream, 'size', { get: () => check.size })
  return stream as Transform & { readonly size: number }
}

/** Checks bytes held in memory against a digest. */
export function verifyBytes(data: Uint8Array, expected: Digest, what = 'content'): void {
  const { algorithm } = parseDigest(expected)
  const actual = digestOf(data, algorithm)
  if (actual !== expected) {
    throw new CofferError(
      'ERR_OCI_DIGEST_MISMATCH',
      `${what} digest ${actual} does not match the expected ${expected}`,
    )
  }
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}
