/**
 * Hand-made TPM quotes for unit tests: a TPMS_ATTEST / TPMT_SIGNATURE writer and a "software TPM"
 * that signs with a Node key. It follows TPM 2.0 Part 2 independently of lib/attest/tpm's parser,
 * so parser bugs are not mirrored here; test/integration/tpm.test.ts checks both against swtpm.
 */
import { constants, createHash, sign, type KeyObject } from 'node:crypto'
import type { TpmEvidence } from '../../lib/attest/tpm/evidence.js'

const u16 = (v: number): Buffer => Buffer.from([(v >> 8) & 0xff, v & 0xff])
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}
const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(v)
  return b
}
const tpm2b = (b: Uint8Array): Buffer => Buffer.concat([u16(b.length), b])

export interface QuoteFields {
  magic?: number
  type?: number
  qualifiedSigner?: Uint8Array
  extraData: Uint8Array
  clock?: bigint
  resetCount?: number
  restartCount?: number
  safe?: number
  firmwareVersion?: bigint
  /** Banks: hash alg and selected PCRs; default one sha256 bank. */
  selections?: { hashAlg: number; pcrs: number[]; sizeofSelect?: number }[]
  pcrDigest: Uint8Array
}

/** Marshals a TPMS_ATTEST of type quote. */
export function marshalQuoteAttest(f: QuoteFields): Buffer {
  const selections = f.selections ?? [{ hashAlg: 0x000b, pcrs: [...Array(24).keys()] }]
  const sel = [u32(selections.length)]
  for (const s of selections) {
    const size = s.sizeofSelect ?? 3
    const bitmap = Buffer.alloc(size)
    for (const p of s.pcrs) bitmap[p >> 3] = bitmap[p >> 3]! | (1 << (p & 7))
    sel.push(u16(s.hashAlg), Buffer.from([size]), bitmap)
  }
  return Buffer.concat([
    u32(f.magic ?? 0xff544347),
    u16(f.type ?? 0x8018),
    tpm2b(f.qualifiedSigner ?? Buffer.concat([u16(0x000b), Buffer.alloc(32, 0xab)])),
    tpm2b(f.extraData),
    u64(f.clock ?? 123456789n),
    u32(f.resetCount ?? 3),
    u32(f.restartCount ?? 1),
    Buffer.from([f.safe ?? 1]),
    u64(f.firmwareVersion ?? 0x2019102300163636n),
    ...sel,
    tpm2b(f.pcrDigest),
  ])
}

/** TPMT_SIGNATURE for RSASSA/RSAPSS (one TPM2B) or ECDSA (r, s with leading zeros dropped, as TPMs do). */
export function marshalSignature(
  scheme: 'rsassa' | 'rsapss' | 'ecdsa',
  hashAlg: number,
  sig: Uint8Array,
): Buffer {
  if (scheme === 'ecdsa') {
    const half = sig.length / 2
    const strip = (b: Uint8Array): Uint8Array => {
      let i = 0
      while (i < b.length - 1 && b[i] === 0) i++
      return b.subarray(i)
    }
    return Buffer.concat([
      u16(0x0018),
      u16(hashAlg),
      tpm2b(strip(sig.subarray(0, half))),
      tpm2b(strip(sig.subarray(half))),
    ])
  }
  return Buffer.concat([u16(scheme === 'rsassa' ? 0x0014 : 0x0016), u16(hashAlg), tpm2b(sig)])
}

const HASH_NAME: Record<number, string> = {
  0x0004: 'sha1',
  0x000b: 'sha256',
  0x000c: 'sha384',
  0x000d: 'sha512',
}

/** Signs `message` as a TPM would with `key` under `scheme`; returns the TPMT_SIGNATURE. */
export function tpmSign(
  key: KeyObject,
  scheme: 'rsassa' | 'rsapss' | 'ecdsa',
  message: Uint8Array,
  hashAlg = 0x000b,
): Buffer {
  const hash = HASH_NAME[hashAlg]!
  const raw =
    scheme === 'ecdsa'
      ? sign(hash, message, { key, dsaEncoding: 'ieee-p1363' })
      : sign(hash, message, {
          key,
          padding: scheme === 'rsassa' ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_PSS_PADDING,
          saltLength: createHash(hash).digest().length,
        })
  return marshalSignature(scheme, hashAlg, raw)
}

/** 24 distinct sha256 PCR values. */
export function samplePcrs(seed = 'pcr'): Buffer[] {
  return Array.from({ length: 24 }, (_, i) => createHash('sha256').update(`${seed}${i}`).digest())
}

/**
 * Complete `tpm` evidence from a software "TPM": a quote over `pcrValues` (all 24 unless
 * `pcrs` says which) binding `extraData`, signed by `privateKey`.
 */
export function softwareEvidence(o: {
  privateKey: KeyObject
  publicKey: KeyObject
  scheme: 'rsassa' | 'rsapss' | 'ecdsa'
  extraData: Uint8Array
  pcrValues?: Buffer[]
  fields?: Partial<QuoteFields>
}): TpmEvidence {
  const pcrValues = o.pcrValues ?? samplePcrs()
  const pcrDigest = createHash('sha256').update(Buffer.concat(pcrValues)).digest()
  const message = marshalQuoteAttest({ extraData: o.extraData, pcrDigest, ...o.fields })
  return {
    ak_public: o.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    tpm_quote: {
      message: message.toString('base64'),
      signature: tpmSign(o.privateKey, o.scheme, message).toString('base64'),
      pcrs: pcrValues.map((v) => v.toString('hex')),
    },
  }
}
