/**
 * The CMS EnvelopedData (RFC 5652 §6) the pkcs7 key wrapper reads and writes, byte for byte as
 * ocicrypt writes it through go.mozilla.org/pkcs7 `Encrypt` with AES-128-GCM (checked against
 * skopeo 1.9.3 in test/interop/pkcs7-skopeo.test.ts):
 *
 * ```
 * ContentInfo SEQUENCE { id-envelopedData, [0] EXPLICIT EnvelopedData SEQUENCE {
 *   version INTEGER 0,
 *   recipientInfos SET OF (DER-sorted) KeyTransRecipientInfo SEQUENCE {
 *     version 0, IssuerAndSerialNumber { issuer Name, serial INTEGER },
 *     AlgorithmIdentifier { rsaEncryption }            -- no NULL parameters
 *     encryptedKey OCTET STRING },                     -- RSAES-PKCS1-v1_5(CEK)
 *   EncryptedContentInfo SEQUENCE { id-data,
 *     AlgorithmIdentifier { aes128-GCM, 10 13 30 11 84 0c <nonce 12> 02 01 10 },
 *     [0] constructed { OCTET STRING ciphertext || tag16 } } } }
 * ```
 *
 * The GCM parameters are not RFC 5084's `GCMParameters`: the Go code declares the nonce
 * `asn1:"tag:4"` (context [4], not OCTET STRING) and wraps the DER of that SEQUENCE once more in
 * a RawValue with tag 16 but no constructed bit. Go's decoder reads `Parameters.Bytes` back, so
 * ocicrypt needs this exact shape; OpenSSL cannot parse it (`openssl cms -decrypt` fails).
 * `readGcmParameters` takes that shape and RFC 5084's.
 */
import { X509Certificate } from 'node:crypto'
import {
  ContentEncryptionAlgorithmIdentifier,
  ContentInfo,
  EncryptedContent,
  EncryptedContentInfo,
  EnvelopedData,
  IssuerAndSerialNumber,
  KeyEncryptionAlgorithmIdentifier,
  KeyTransRecipientInfo,
  RecipientIdentifier,
  RecipientInfo,
  RecipientInfos,
  id_data,
  id_envelopedData,
} from '@peculiar/asn1-cms'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { Certificate, type Name } from '@peculiar/asn1-x509'

export const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1'
export const OID_AES128_GCM = '2.16.840.1.101.3.4.1.6'
export const OID_AES256_GCM = '2.16.840.1.101.3.4.1.46'
/** AES-GCM as go.mozilla.org/pkcs7 checks it on decryption: 12-byte nonce, 16-byte tag. */
export const GCM_NONCE_BYTES = 12
export const GCM_TAG_BYTES = 16

/** What unwrapping needs of one certificate. */
export interface RecipientCert {
  x509: X509Certificate
  issuerName: Name
  /** DER of the issuer Name, as the ASN.1 library re-encodes it; compared with a recipient's, re-encoded the same way. */
  issuer: Buffer
  /** Content octets of the serial INTEGER. */
  serial: Buffer
}

/** One KeyTransRecipientInfo, as read. */
export interface ParsedRecipient {
  /** DER of the issuer Name, re-encoded; undefined for a subjectKeyIdentifier recipient. */
  issuer?: Buffer
  serial?: Buffer
  keyEncryptionAlgorithm: string
  encryptedKey: Buffer
}

/** An EnvelopedData, as read: everything the unwrap needs, nothing checked cryptographically. */
export interface ParsedEnvelope {
  recipients: ParsedRecipient[]
  contentEncryptionAlgorithm: string
  /** Raw parameters TLV of the content encryption AlgorithmIdentifier. */
  parameters?: Buffer
  /** EncryptedContent octets, primitive or the concatenation of a constructed encoding. */
  encryptedContent: Buffer
}

/** What goes into one EnvelopedData on wrapping. */
export interface EnvelopeParts {
  recipients: { cert: RecipientCert; encryptedKey: Uint8Array }[]
  nonce: Uint8Array
  /** AES-GCM ciphertext with the 16-byte tag appended, as Go's `gcm.Seal` returns it. */
  sealed: Uint8Array
}

/**
 * Parses one x509 certificate, PEM (its first CERTIFICATE block) or DER, as ocicrypt's
 * `utils.ParseCertificate` does. Throws on anything else (the caller names the source).
 */
export function parseCertificate(bytes: Uint8Array): RecipientCert {
  const x509 = new X509Certificate(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  const cert = AsnConvert.parse(x509.raw, Certificate)
  return {
    x509,
    issuerName: cert.tbsCertificate.issuer,
    issuer: Buffer.from(AsnConvert.serialize(cert.tbsCertificate.issuer)),
    serial: Buffer.from(cert.tbsCertificate.serialNumber),
  }
}

/** Builds the ContentInfo DER (layout in the module comment). */
export function encodeEnvelope(parts: EnvelopeParts): Buffer {
  // SET OF is DER-sorted: Go's encoding/asn1 sorts it, and skopeo's output shows it.
  const recipients = parts.recipients
    .map(({ cert, encryptedKey }) => {
      const ri = new RecipientInfo({
        ktri: new KeyTransRecipientInfo({
          version: 0,
          rid: new RecipientIdentifier({
            issuerAndSerialNumber: new IssuerAndSerialNumber({
              issuer: cert.issuerName,
              serialNumber: toArrayBuffer(cert.serial),
            }),
          }),
          keyEncryptionAlgorithm: new KeyEncryptionAlgorithmIdentifier({ algorithm: OID_RSA_ENCRYPTION }),
          encryptedKey: new OctetString(encryptedKey),
        }),
      })
      return { ri, der: Buffer.from(AsnConvert.serialize(ri)) }
    })
    .sort((a, b) => compareDer(a.der, b.der))
    .map((r) => r.ri)
  const envelope = new EnvelopedData({
    version: 0,
    recipientInfos: new RecipientInfos(recipients),
    encryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new ContentEncryptionAlgorithmIdentifier({
        algorithm: OID_AES128_GCM,
        parameters: toArrayBuffer(goGcmParameters(parts.nonce)),
      }),
      encryptedContent: new EncryptedContent({ constructedValue: [new OctetString(parts.sealed)] }),
    }),
  })
  const info = new ContentInfo({ contentType: id_envelopedData, content: AsnConvert.serialize(envelope) })
  return Buffer.from(AsnConvert.serialize(info))
}

/**
 * Parses a ContentInfo holding an EnvelopedData; undefined for anything else (the annotation is
 * public, but the caller still answers with its one fixed failure).
 */
export function decodeEnvelope(der: Uint8Array): ParsedEnvelope | undefined {
  try {
    const info = AsnConvert.parse(der, ContentInfo)
    if (info.contentType !== id_envelopedData) return undefined
    const envelope = AsnConvert.parse(info.content, EnvelopedData)
    const eci = envelope.encryptedContentInfo
    if (eci.contentType !== id_data || !eci.encryptedContent) return undefined
    const content = eci.encryptedContent
    const encryptedContent = content.value
      ? Buffer.from(content.value.buffer)
      : Buffer.concat((content.constructedValue ?? []).map((o) => Buffer.from(o.buffer)))
    const recipients: ParsedRecipient[] = []
    for (const ri of envelope.recipientInfos) {
      const ias = ri.ktri?.rid.issuerAndSerialNumber
      if (!ri.ktri) continue // kari, kekri, pwri, ori: no RSA key transport
      recipients.push({
        ...(ias
          ? {
              issuer: Buffer.from(AsnConvert.serialize(ias.issuer)),
              serial: Buffer.from(ias.serialNumber),
            }
          : {}),
        keyEncryptionAlgorithm: ri.ktri.keyEncryptionAlgorithm.algorithm,
        encryptedKey: Buffer.from(ri.ktri.encryptedKey.buffer),
      })
    }
    const params = eci.contentEncryptionAlgorithm.parameters
    return {
      recipients,
      contentEncryptionAlgorithm: eci.contentEncryptionAlgorithm.algorithm,
      ...(params ? { parameters: Buffer.from(params) } : {}),
      encryptedContent,
    }
  } catch {
    return undefined
  }
}

/** True when a recipient names this certificate (go.mozilla.org/pkcs7 `selectRecipientForCertificate`). */
export function namesCertificate(r: ParsedRecipient, cert: RecipientCert): boolean {
  return (
    r.issuer !== undefined &&
    r.serial !== undefined &&
    r.issuer.equals(cert.issuer) &&
    integerValue(r.serial) === integerValue(cert.serial)
  )
}

/**
 * The nonce and tag length from the content encryption parameters, in the Go shape (module
 * comment) or RFC 5084's `GCMParameters ::= SEQUENCE { OCTET STRING, INTEGER DEFAULT 12 }`.
 * Undefined when neither fits.
 */
export function readGcmParameters(tlv: Uint8Array): { nonce: Buffer; tagLength: number } | undefined {
  const outer = readTlv(Buffer.from(tlv), 0)
  if (!outer || outer.end !== tlv.byteLength) return undefined
  let seq = outer
  // Go: tag 0x10 (or 0x30) whose content is itself the DER of the SEQUENCE.
  if (outer.tag === 0x10 || (outer.tag === 0x30 && outer.content[0] === 0x30)) {
    const inner = readTlv(outer.content, 0)
    if (!inner || inner.tag !== 0x30 || inner.end !== outer.content.length) return undefined
    seq = inner
  } else if (outer.tag !== 0x30) return undefined
  const nonce = readTlv(seq.content, 0)
  if (!nonce || (nonce.tag !== 0x04 && nonce.tag !== 0x84)) return undefined
  if (nonce.end === seq.content.length) return { nonce: nonce.content, tagLength: 12 }
  const icv = readTlv(seq.content, nonce.end)
  if (!icv || icv.tag !== 0x02 || icv.end !== seq.content.length || icv.content.length !== 1) return undefined
  return { nonce: nonce.content, tagLength: icv.content[0]! }
}

// === helpers

/** `10 13 30 11 84 0c <nonce> 02 01 10`: the bytes go.mozilla.org/pkcs7 writes (module comment). */
function goGcmParameters(nonce: Uint8Array): Buffer {
  if (nonce.byteLength !== GCM_NONCE_BYTES) throw new Error('AES-GCM nonce must be 12 bytes')
  const inner = Buffer.concat([
    Buffer.from([0x84, nonce.byteLength]),
    nonce,
    Buffer.from([0x02, 0x01, GCM_TAG_BYTES]),
  ])
  const seq = Buffer.concat([Buffer.from([0x30, inner.length]), inner])
  return Buffer.concat([Buffer.from([0x10, seq.length]), seq])
}

interface Tlv {
  tag: number
  content: Buffer
  end: number
}

/** One DER TLV at `off` with a one-byte tag and a length of at most two bytes; enough for GCM parameters. */
function readTlv(buf: Buffer, off: number): Tlv | undefined {
  if (off + 2 > buf.length) return undefined
  const tag = buf[off]!
  let len = buf[off + 1]!
  let start = off + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n < 1 || n > 2 || start + n > buf.length) return undefined
    len = buf.readUIntBE(start, n)
    start += n
  }
  if (start + len > buf.length) return undefined
  return { tag, content: buf.subarray(start, start + len), end: start + len }
}

/** X.690 §11.6 order for SET OF: compare encodings as octet strings, the shorter one zero-padded. */
function compareDer(a: Buffer, b: Buffer): number {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** An INTEGER's content octets as a bigint (two's complement), so `00 80` and `80` do not both match. */
function integerValue(octets: Buffer): bigint {
  if (octets.length === 0) return 0n
  let v = BigInt(`0x${octets.toString('hex')}`)
  if (octets[0]! & 0x80) v -= 1n << BigInt(octets.length * 8)
  return v
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}
