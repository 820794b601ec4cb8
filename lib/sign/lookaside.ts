/**
 * Simple-signing signatures in a lookaside store (c/image `docker/docker_image_src.go`
 * `getSignaturesFromLookaside`, `docs/signature-protocols.md`):
 * `<base>/<repository path>@<algorithm>=<hex>/signature-<N>`, N = 1, 2, … until one is missing.
 * `file://` stores are read and written; `http(s)://` stores are read-only.
 */
import { mkdir, open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseDigest, type Digest } from '../oci/digest.js'
import { writeFileAtomic } from '../util/atomic-file.js'
import { CofferError } from '../util/errors.js'
import { readAllLimited, readOptionalFileLimited, throwIfAborted, type Io } from '../util/io.js'
import { HEADERS_TIMEOUT_MS } from '../util/limits.js'
import { MAX_SIGNATURE_BYTES, MAX_SIGNATURES } from './limits.js'

/** The URL of signature number `n` (1-based) of `digest` in `repository` under `base`. */
export function lookasideSignatureUrl(base: URL, repository: string, digest: Digest, n: number): URL {
  const { algorithm, encoded } = parseDigest(digest)
  const url = new URL(base.href)
  url.pathname = `${base.pathname.replace(/\/+$/, '')}/${repository}@${algorithm}=${encoded}/signature-${n}`
  return url
}

/** Every signature stored for the manifest, in order. */
export async function readLookasideSignatures(
  base: URL,
  repository: string,
  digest: Digest,
  o: Io = {},
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for (let n = 1; n <= MAX_SIGNATURES + 1; n++) {
    throwIfAborted(o.signal)
    const blob = await readOne(lookasideSignatureUrl(base, repository, digest, n), o)
    if (!blob) return out
    if (n > MAX_SIGNATURES)
      throw new CofferError('ERR_SIGN_TOO_MANY', `more than ${MAX_SIGNATURES} signatures for ${digest}`)
    out.push(blob)
  }
  return out
}

/** Stores a signature at the first free `signature-N`; returns N. Only `file://` stores can be written. */
export async function appendLookasideSignature(
  base: URL,
  repository: string,
  digest: Digest,
  blob: Uint8Array,
): Promise<number> {
  if (base.protocol !== 'file:')
    throw new CofferError(
      'ERR_SIGN_UNSUPPORTED',
      `cannot write signatures to ${base.protocol}// lookaside ${base.href}; configure a file:// lookaside-staging in registries.d`,
    )
  for (let n = 1; n <= MAX_SIGNATURES; n++) {
    const path = fileURLToPath(lookasideSignatureUrl(base, repository, digest, n))
    await mkdir(dirname(path), { recursive: true })
    // Claim the slot with O_EXCL so two signers never overwrite each other, then fill it atomically.
    let fh
    try {
      fh = await open(path, 'wx', 0o644)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
      throw new CofferError(
        'ERR_SIGN_STORAGE',
        `cannot write ${path}: ${(err as NodeJS.ErrnoException).code}`,
        {
          cause: err,
        },
      )
    }
    await fh.close()
    await writeFileAtomic(path, blob)
    return n
  }
  throw new CofferError('ERR_SIGN_TOO_MANY', `${digest} already has ${MAX_SIGNATURES} signatures`)
}

async function readOne(url: URL, o: Io): Promise<Uint8Array | undefined> {
  if (url.protocol === 'file:') {
    const path = fileURLToPath(url)
    return readOptionalFileLimited(path, MAX_SIGNATURE_BYTES, `signature ${path}`, 'ERR_SIGN_STORAGE')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CofferError('ERR_SIGN_UNSUPPORTED', `lookaside scheme ${url.protocol} is not supported`)
  let res: Response
  try {
    const timeout = AbortSignal.timeout(HEADERS_TIMEOUT_MS)
    res = await fetch(url, {
      signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout,
      redirect: 'follow',
    })
  } catch (cause) {
    throwIfAborted(o.signal)
    throw new CofferError('ERR_SIGN_STORAGE', `cannot read signature ${url.href}`, { cause })
  }
  if (res.status === 404) {
    await res.body?.cancel()
    return undefined
  }
  if (res.status !== 200) {
    await res.body?.cancel()
    throw new CofferError('ERR_SIGN_STORAGE', `reading signature ${url.href}: HTTP ${res.status}`)
  }
  if (!res.body) return new Uint8Array()
  return readAllLimited(
    res.body as unknown as AsyncIterable<Uint8Array>,
    MAX_SIGNATURE_BYTES,
    `signature ${url.href}`,
  )
}
