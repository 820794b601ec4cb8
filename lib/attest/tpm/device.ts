import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited, type Io } from '../../util/io.js'
import { MAX_TPM_AK_PUBLIC_BYTES, MAX_TPM_ATTEST_BYTES, MAX_TPM_SIGNATURE_BYTES } from '../../util/limits.js'
import { PCR_COUNT, QUALIFYING_DATA_SIZE, SHA256_PCR_SIZE } from './constants.js'
import { parseQuoteAttest } from './quote-attest.js'
import { handleArg, runTpm2Tool } from './tpm2-tools.js'

/**
 * The few TPM operations coffer needs, each one tpm2-tools run (tpm2-tools 5.x). Outputs go
 * through a private temporary directory that is always removed. Every failure is
 * ERR_ATTEST_DEVICE_FAILED carrying the tool's stderr.
 */
export interface TpmTarget extends Io {
  /** `-T` TCTI: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=N`, … */
  readonly tcti: string
}

/** A quote's raw parts, before they are base64/hex-encoded into evidence. */
export interface RawQuote {
  /** TPMS_ATTEST as the TPM signed it. */
  readonly message: Uint8Array
  /** TPMT_SIGNATURE, marshalled. */
  readonly signature: Uint8Array
  /** sha256 values of the selected PCRs, ascending, read by the same tpm2_quote run. */
  readonly pcrValues: readonly Uint8Array[]
}

/** How long `handleExists` waits: detection runs at start-up and must not hang on a stuck TPM. */
const PROBE_TIMEOUT_MS = 5_000

/** Whether a key lives at `handle` (false when the TPM does not answer too). Never throws. */
export async function handleExists(t: TpmTarget, handle: number): Promise<boolean> {
  try {
    await runTpm2Tool('tpm2_readpublic', ['-c', handleArg(handle)], { ...t, timeoutMs: PROBE_TIMEOUT_MS })
    return true
  } catch {
    return false
  }
}

/** A key's public part as `tpm2_readpublic` reports it. */
export interface KeyPublic {
  /** DER SubjectPublicKeyInfo (`-f der`). */
  readonly der: Uint8Array
  /** The signing scheme fixed in the key (`rsassa`, `rsapss`, `ecdsa`), if any. */
  readonly scheme?: string
}

/** The public part of the key at `handle`. */
export async function readPublic(t: TpmTarget, handle: number): Promise<KeyPublic> {
  return withTempDir(async (dir) => {
    const out = join(dir, 'key.der')
    const { stdout } = await runTpm2Tool(
      'tpm2_readpublic',
      ['-c', handleArg(handle), '-f', 'der', '-o', out],
      t,
    )
    const der = await readOutput(out, MAX_TPM_AK_PUBLIC_BYTES, 'tpm2_readpublic output')
    // The YAML on stdout is the only place tpm2-tools reports the scheme: "scheme:\n  value: rsapss".
    const scheme = /^scheme:\s*\n\s+value:\s*([a-z0-9]+)/m.exec(stdout)?.[1]
    return scheme && scheme !== 'null' ? { der, scheme } : { der }
  })
}

/**
 * TPM2_Quote with the AK at `akHandle` (whose fixed signing scheme is `scheme`, if any) over the
 * sha256 PCRs `pcrs`, with `qualifyingData` (exactly QUALIFYING_DATA_SIZE bytes) as extraData.
 * `-F values` makes tpm2_quote write the PCR values it read for this quote as raw concatenated
 * digests in selection order.
 */
export async function quote(
  t: TpmTarget,
  opts: { akHandle: number; pcrs: readonly number[]; qualifyingData: Uint8Array; scheme?: string },
): Promise<RawQuote> {
  if (opts.qualifyingData.length !== QUALIFYING_DATA_SIZE) {
    throw new CofferError('ERR_INTERNAL', `qualifying data must be ${QUALIFYING_DATA_SIZE} bytes`)
  }
  const pcrs = [...new Set(opts.pcrs)].sort((a, b) => a - b)
  if (pcrs.length === 0 || pcrs.some((p) => !Number.isInteger(p) || p < 0 || p >= PCR_COUNT)) {
    throw new CofferError('ERR_INVALID_ARGUMENT', `PCR selection must be PCRs 0..${PCR_COUNT - 1}`)
  }
  // A PCR extended between tpm2_quote's quote and its PCR read (a runtime measurement landing
  // mid-quote) makes values that do not hash to the pcrDigest; a verifier would reject them, so
  // quote again rather than send evidence that cannot pass.
  for (let attempt = 1; ; attempt++) {
    const q = await quoteOnce(t, { ...opts, pcrs })
    if (pcrValuesMatch(q)) return q
    if (attempt >= QUOTE_ATTEMPTS) {
      throw new CofferError(
        'ERR_ATTEST_DEVICE_FAILED',
        `tpm2_quote's PCR values did not match its quote ${QUOTE_ATTEMPTS} times in a row (PCRs changing while quoting?)`,
      )
    }
  }
}

const QUOTE_ATTEMPTS = 3

/** Whether the PCR values hash to the pcrDigest in the quote (hash chosen by the digest's size). */
function pcrValuesMatch(q: RawQuote): boolean {
  let digest: Uint8Array
  try {
    digest = parseQuoteAttest(q.message).pcrDigest
  } catch (cause) {
    throw new CofferError('ERR_ATTEST_DEVICE_FAILED', 'tpm2_quote wrote a message that is not a quote', {
      cause,
    })
  }
  const hash = { 32: 'sha256', 48: 'sha384', 64: 'sha512' }[digest.length]
  if (!hash) return false
  const h = createHash(hash)
  for (const v of q.pcrValues) h.update(v)
  return h.digest().equals(digest)
}

async function quoteOnce(
  t: TpmTarget,
  q: { akHandle: number; pcrs: readonly number[]; qualifyingData: Uint8Array; scheme?: string },
): Promise<RawQuote> {
  const pcrs = q.pcrs
  return withTempDir(async (dir) => {
    const [msg, sig, vals] = ['quote.msg', 'quote.sig', 'quote.pcrs'].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ]
    // -Q: tpm2_quote otherwise prints the whole quote and PCR list as YAML on stdout.
    await runTpm2Tool(
      'tpm2_quote',
      [
        '-Q',
        ['-c', handleArg(q.akHandle)],
        ['-l', `sha256:${pcrs.join(',')}`],
        ['-q', Buffer.from(q.qualifyingData).toString('hex')],
        ['-g', 'sha256'],
        // Without --scheme tpm2_quote asks for the key type's default (RSASSA for RSA), which a
        // key with another fixed scheme (RSAPSS) refuses with TPM_RC_SCHEME.
        q.scheme ? [`--scheme=${q.scheme}`] : [],
        ['-m', msg, '-s', sig, '-o', vals, '-F', 'values'],
      ].flat(),
      t,
    )
    const message = await readOutput(msg, MAX_TPM_ATTEST_BYTES, 'tpm2_quote message')
    const signature = await readOutput(sig, MAX_TPM_SIGNATURE_BYTES, 'tpm2_quote signature')
    const raw = await readOutput(vals, PCR_COUNT * SHA256_PCR_SIZE, 'tpm2_quote PCR values')
    if (raw.length !== pcrs.length * SHA256_PCR_SIZE) {
      throw new CofferError(
        'ERR_ATTEST_DEVICE_FAILED',
        `tpm2_quote wrote ${raw.length} bytes of PCR values for ${pcrs.length} sha256 PCRs (is the sha256 bank active?)`,
      )
    }
    const pcrValues = pcrs.map((_, i) => raw.subarray(i * SHA256_PCR_SIZE, (i + 1) * SHA256_PCR_SIZE))
    return { message, signature, pcrValues }
  })
}

/** TPM2_PCR_Extend of the sha256 bank of PCR `index` with a 32-byte digest. */
export async function extendPcr(t: TpmTarget, index: number, digest: Uint8Array): Promise<void> {
  if (!Number.isInteger(index) || index < 0 || index >= PCR_COUNT || digest.length !== SHA256_PCR_SIZE) {
    throw new CofferError('ERR_INVALID_ARGUMENT', `PCR extend needs a PCR 0..23 and a 32-byte digest`)
  }
  await runTpm2Tool('tpm2_pcrextend', [`${index}:sha256=${Buffer.from(digest).toString('hex')}`], t)
}

/** Runs `fn` with a fresh private directory, removed afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-tpm-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function readOutput(path: string, limit: number, what: string): Promise<Buffer> {
  const b = await readOptionalFileLimited(path, limit, what, 'ERR_ATTEST_DEVICE_FAILED').catch(
    (err: unknown) => {
      throw new CofferError('ERR_ATTEST_DEVICE_FAILED', `${what} is unusable`, { cause: err })
    },
  )
  if (!b) throw new CofferError('ERR_ATTEST_DEVICE_FAILED', `${what} was not written`)
  return b
}
