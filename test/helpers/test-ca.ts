/**
 * Test certificate authorities: X.509 certificates built with @peculiar/asn1-x509 and signed with
 * node:crypto, so tests control every field a verifier looks at (issuer, validity, CA flag,
 * vendor extensions, RSA-PSS or ECDSA signatures).
 */
import {
  generateKeyPairSync,
  randomBytes,
  sign,
  constants,
  X509Certificate,
  type KeyObject,
} from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  Extension,
  Extensions,
  id_ce_basicConstraints,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509'

export type TestKeyType = 'rsa' | 'p256' | 'p384'

export interface TestKeyPair {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

export interface TestCert extends TestKeyPair {
  readonly cert: X509Certificate
  readonly der: Buffer
  readonly pem: string
  readonly subject: string
}

export function testKey(type: TestKeyType): TestKeyPair {
  if (type === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 })
  return generateKeyPairSync('ec', { namedCurve: type === 'p256' ? 'prime256v1' : 'secp384r1' })
}

/** RSASSA-PSS-params: SHA-384, MGF1-SHA-384, salt 48 (what AMD signs its certificates with). */
const PSS_SHA384_PARAMS = Buffer.from(
  '3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130',
  'hex',
)
const OID_RSA_PSS = '1.2.840.113549.1.1.10'
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2'
const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3'

function nameOf(cn: string): Name {
  return new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({
        type: '2.5.4.10',
        value: new AttributeValue({ utf8String: 'coffer test' }),
      }),
    ]),
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ])
}

export interface TestCertOptions {
  readonly subject: string
  /** The issuer; omitted = self-signed with `key`. */
  readonly issuer?: TestCert
  readonly key?: TestKeyPair
  readonly keyType?: TestKeyType
  readonly ca?: boolean
  readonly notBefore?: Date
  readonly notAfter?: Date
  /** Extra extensions: OID → the extension's DER value. */
  readonly extensions?: Readonly<Record<string, Uint8Array>>
}

const DAY = 86_400_000

/** Builds and signs one certificate (RSA issuers sign RSA-PSS/SHA-384, EC issuers ECDSA). */
export function makeTestCert(o: TestCertOptions): TestCert {
  const key = o.key ?? testKey(o.keyType ?? 'p256')
  const signer = o.issuer ?? { ...key, subject: o.subject }
  const signerType = signer.privateKey.asymmetricKeyType
  const curve = signer.privateKey.asymmetricKeyDetails?.namedCurve
  const sigAlg =
    signerType === 'rsa'
      ? new AlgorithmIdentifier({
          algorithm: OID_RSA_PSS,
          parameters: new Uint8Array(PSS_SHA384_PARAMS).buffer,
        })
      : new AlgorithmIdentifier({ algorithm: curve === 'secp384r1' ? OID_ECDSA_SHA384 : OID_ECDSA_SHA256 })
  const exts: Extension[] = []
  if (o.ca) {
    exts.push(
      new Extension({
        extnID: id_ce_basicConstraints,
        critical: true,
        extnValue: new OctetString(AsnConvert.serialize(new BasicConstraints({ cA: true }))),
      }),
    )
  }
  for (const [oid, value] of Object.entries(o.extensions ?? {})) {
    exts.push(new Extension({ extnID: oid, extnValue: new OctetString(value) }))
  }
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array([0x01, ...randomBytes(8)]).buffer,
    signature: sigAlg,
    issuer: nameOf(signer.subject),
    validity: new Validity({
      notBefore: o.notBefore ?? new Date(Date.now() - DAY),
      notAfter: o.notAfter ?? new Date(Date.now() + 365 * DAY),
    }),
    subject: nameOf(o.subject),
    subjectPublicKeyInfo: AsnConvert.parse(
      key.publicKey.export({ type: 'spki', format: 'der' }),
      SubjectPublicKeyInfo,
    ),
    ...(exts.length > 0 ? { extensions: new Extensions(exts) } : {}),
  })
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs))
  const signature =
    signerType === 'rsa'
      ? sign('sha384', tbsDer, {
          key: signer.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 48,
        })
      : sign(curve === 'secp384r1' ? 'sha384' : 'sha256', tbsDer, signer.privateKey)
  const der = Buffer.from(
    AsnConvert.serialize(
      new Certificate({
        tbsCertificate: tbs,
        signatureAlgorithm: sigAlg,
        signatureValue: new Uint8Array(signature).buffer,
      }),
    ),
  )
  const cert = new X509Certificate(der)
  return { ...key, cert, der, pem: cert.toString(), subject: o.subject }
}

/** A DER INTEGER for small non-negative values (AMD's SPL extensions). */
export function derInteger(n: number): Uint8Array {
  const bytes: number[] = []
  let v = n
  do {
    bytes.unshift(v & 0xff)
    v >>= 8
  } while (v > 0)
  if (bytes[0]! & 0x80) bytes.unshift(0)
  return Uint8Array.from([0x02, bytes.length, ...bytes])
}

/** A DER OCTET STRING of up to 127 bytes. */
export function derOctetString(b: Uint8Array): Uint8Array {
  return Uint8Array.from([0x04, b.length, ...b])
}
