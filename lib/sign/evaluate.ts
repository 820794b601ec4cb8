/**
 * The trust-policy evaluator (c/image `signature/policy_eval*.go`): may this image be used?
 *
 * `evaluate(policy, image, manifest, signatures)` picks the requirements of the most specific scope
 * (policy-scope.ts) and checks **every** one of them, in order; signedBy / sigstoreSigned are met
 * when **at least one** signature passes the whole checklist:
 *   1. the signature is cryptographically valid and made by a trusted key;
 *   2. its payload parses strictly and has the expected type;
 *   3. the signed manifest digest is the digest of `manifest` (the bytes the caller will use);
 *   4. the signed docker reference fits the image under `signedIdentity`.
 *
 * It makes no network calls itself: signatures come from a SignatureSource (read once, lazily)
 * and key paths through a KeyResolver (files by default, `kbs:///` in the guest). Anything that
 * is not an accept throws: ERR_SIGN_POLICY_DENIED for a refusal, ERR_SIGN_UNSUPPORTED for a
 * requirement coffer cannot evaluate (Fulcio, Rekor, PKI, X.509, signedBaseLayer), key errors as
 * they are. A result is returned only when the image is accepted.
 */
import type { KeyObject } from 'node:crypto'
import type { PublicKey } from 'openpgp'
import { digestOf, parseDigest } from '../oci/digest.js'
import type { ImageName } from '../oci/image-name.js'
import { formatImageName } from '../oci/image-name.js'
import { CofferError } from '../util/errors.js'
import { throwIfAborted, type Io } from '../util/io.js'
import { readCosignPublicKey, verifyCosignSignature } from './cosign-key.js'
import { identityMatches } from './identity-match.js'
import { fileKeyResolver, type KeyResolver } from './key-resolver.js'
import type { NamedReference } from './named-reference.js'
import { COSIGN_SIGNATURE_TYPE, parsePayload, SIMPLE_SIGNING_TYPE, type SignedClaims } from './payload.js'
import type {
  Policy,
  PolicyRequirement,
  SignedByRequirement,
  SigstoreSignedRequirement,
  SignedIdentity,
} from './policy.js'
import { lookupKeys, requirementsFor } from './policy-scope.js'
import {
  SIGSTORE_PAYLOAD_MEDIA_TYPE,
  SIGSTORE_SIGNATURE_ANNOTATION,
  type Signature,
  type SignatureSource,
} from './signature.js'

export interface EvaluateOptions extends Io {
  /** Resolves keyPath / keyPaths (default: local files only). */
  resolveKey?: KeyResolver
}

/** A signature that satisfied a requirement. */
export interface AcceptedSignature {
  readonly kind: Signature['kind']
  /** GPG: the primary key fingerprint. sigstore: the index of the policy key that verified it. */
  readonly signer: string
  readonly dockerReference: string
  readonly manifestDigest: string
}

export interface EvaluationResult {
  /** Where the requirements came from: `default` or `transports.docker["scope"]`. */
  readonly scope: string
  readonly requirements: readonly {
    readonly type: string
    readonly signatures?: readonly AcceptedSignature[]
  }[]
}

/** Evaluates `policy` for `image`, whose manifest bytes (as fetched and digest-checked) are `manifest`. */
export async function evaluate(
  policy: Policy,
  image: ImageName,
  manifest: Uint8Array,
  source: SignatureSource,
  o: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const { scope, requirements } = requirementsFor(policy, await lookupKeys(image))
  const ctx = new Evaluation(image, manifest, source, o)
  const outcomes: { type: string; signatures?: AcceptedSignature[] }[] = []
  for (const requirement of requirements) {
    throwIfAborted(o.signal)
    const signatures = await ctx.check(requirement, scope)
    outcomes.push({ type: requirement.type, ...(signatures ? { signatures } : {}) })
  }
  return { scope, requirements: outcomes }
}

/** Digest match as c/image `manifest.MatchesDigest`: hash the bytes with the claimed algorithm. */
export function manifestMatchesDigest(manifest: Uint8Array, claimed: string): boolean {
  try {
    const { algorithm } = parseDigest(claimed)
    return digestOf(manifest, algorithm) === claimed
  } catch {
    return false
  }
}

class Evaluation {
  private loaded: Promise<Signature[]> | undefined
  private readonly intended: NamedReference | undefined
  private readonly resolveKey: KeyResolver

  constructor(
    private readonly image: ImageName,
    private readonly manifest: Uint8Array,
    private readonly source: SignatureSource,
    private readonly o: EvaluateOptions,
  ) {
    this.resolveKey = o.resolveKey ?? fileKeyResolver
    // Transports without a docker identity (oci:) can only match exactReference / exactRepository.
    if (image.transport === 'docker') {
      const r = image.ref
      const name = `${r.host}/${r.repository}`
      this.intended = r.digest
        ? { name, digest: r.digest, string: `${name}@${r.digest}` }
        : { name, tag: r.tag!, string: `${name}:${r.tag!}` }
    }
  }

  /** Returns the accepted signatures for signature requirements; throws unless the requirement is met. */
  async check(req: PolicyRequirement, scope: string): Promise<AcceptedSignature[] | undefined> {
    switch (req.type) {
      case 'insecureAcceptAnything':
        return undefined
      case 'reject':
        throw this.denied(scope, `the policy rejects every image here (reject)`)
      case 'signedBaseLayer':
        throw new CofferError('ERR_SIGN_UNSUPPORTED', `${scope}: signedBaseLayer is not implemented`)
      case 'signedBy':
        return this.checkSignedBy(req, scope)
      case 'sigstoreSigned':
        return this.checkSigstoreSigned(req, scope)
    }
  }

  private signatures(): Promise<Signature[]> {
    this.loaded ??= this.source.signatures(this.o)
    return this.loaded
  }

  // === signedBy: simple-signing (GPG) signatures
  private async checkSignedBy(req: SignedByRequirement, scope: string): Promise<AcceptedSignature[]> {
    if (req.keyType !== 'GPGKeys')
      throw new CofferError(
        'ERR_SIGN_UNSUPPORTED',
        `${scope}: signedBy keyType ${req.keyType} is not implemented`,
      )
    const keys = await this.gpgKeys(req)
    const { verifySimpleSignature } = await loadSimpleSigning()
    return this.acceptSome(scope, 'signedBy', async (sig) => {
      if (sig.kind !== 'simple-signing') return 'not a simple-signing signature'
      const { payload, signer } = await verifySimpleSignature(sig.blob, keys)
      const claims = parsePayload(payload, SIMPLE_SIGNING_TYPE)
      return this.checkClaims(claims, req.signedIdentity, 'simple-signing', signer)
    })
  }

  private async gpgKeys(req: SignedByRequirement): Promise<PublicKey[]> {
    const sources =
      req.keyData !== undefined
        ? [{ data: req.keyData, what: 'signedBy keyData' }]
        : await Promise.all(
            (req.keyPaths ?? [req.keyPath!]).map(async (p) => ({
              data: await this.resolveKey(p, this.o),
              what: p,
            })),
          )
    const { readPublicKeyrings } = await loadSimpleSigning()
    const keys: PublicKey[] = []
    for (const s of sources) keys.push(...(await readPublicKeyrings([s.data], s.what)))
    return keys
  }

  // === sigstoreSigned: cosign signatures with public keys (no Fulcio, no Rekor)
  private async checkSigstoreSigned(
    req: SigstoreSignedRequirement,
    scope: string,
  ): Promise<AcceptedSignature[]> {
    if (req.fulcio || req.pki)
      throw new CofferError(
        'ERR_SIGN_UNSUPPORTED',
        `${scope}: sigstoreSigned with ${req.fulcio ? 'fulcio' : 'pki'} certificates is not supported; use keyPath or keyData`,
      )
    if (
      req.rekorPublicKeyPath ||
      req.rekorPublicKeyPaths ||
      req.rekorPublicKeyData ||
      req.rekorPublicKeyDatas
    )
      throw new CofferError(
        'ERR_SIGN_UNSUPPORTED',
        `${scope}: sigstoreSigned with a Rekor public key is not supported (coffer does not verify transparency-log bundles)`,
      )
    const keys = await this.cosignKeys(req)
    return this.acceptSome(scope, 'sigstoreSigned', async (sig) => {
      if (sig.kind !== 'sigstore') return 'not a sigstore signature'
      if (sig.mimeType !== SIGSTORE_PAYLOAD_MEDIA_TYPE)
        return `unsupported sigstore payload type ${clip(sig.mimeType)}`
      const b64 = sig.annotations[SIGSTORE_SIGNATURE_ANNOTATION]
      if (b64 === undefined) return `missing ${SIGSTORE_SIGNATURE_ANNOTATION} annotation`
      const index = keys.findIndex((k) => verifyCosignSignature(sig.payload, b64, k))
      if (index < 0) return 'the cryptographic signature does not verify with any trusted key'
      const claims = parsePayload(sig.payload, COSIGN_SIGNATURE_TYPE)
      return this.checkClaims(claims, req.signedIdentity, 'sigstore', `key ${index}`)
    })
  }

  private async cosignKeys(req: SigstoreSignedRequirement): Promise<KeyObject[]> {
    if (req.keyData) return [readCosignPublicKey(req.keyData, 'sigstoreSigned keyData')]
    if (req.keyDatas)
      return req.keyDatas.map((d, i) => readCosignPublicKey(d, `sigstoreSigned keyDatas[${i}]`))
    const paths = req.keyPaths ?? [req.keyPath!]
    return Promise.all(paths.map(async (p) => readCosignPublicKey(await this.resolveKey(p, this.o), p)))
  }

  // === the claims of a cryptographically valid signature
  private checkClaims(
    claims: SignedClaims,
    rule: SignedIdentity | undefined,
    kind: Signature['kind'],
    signer: string,
  ): AcceptedSignature | string {
    if (!manifestMatchesDigest(this.manifest, claims.manifestDigest))
      return `it signs manifest ${clip(claims.manifestDigest)}, not this one`
    if (!identityMatches(rule, this.intended, claims.dockerReference))
      return `its identity ${clip(claims.dockerReference)} is not accepted (${rule?.type ?? 'matchRepoDigestOrExact'})`
    return { kind, signer, dockerReference: claims.dockerReference, manifestDigest: claims.manifestDigest }
  }

  /**
   * At least one signature must be accepted. `judge` returns the accepted signature or a reason;
   * a thrown ERR_SIGN_SIGNATURE_INVALID counts as that signature's rejection, anything else aborts.
   */
  private async acceptSome(
    scope: string,
    what: string,
    judge: (sig: Signature) => Promise<AcceptedSignature | string>,
  ): Promise<AcceptedSignature[]> {
    const all = await this.signatures()
    if (all.length === 0)
      throw this.denied(scope, `${what}: a signature was required, but no signature exists`)
    const accepted: AcceptedSignature[] = []
    const reasons: string[] = []
    for (const [i, sig] of all.entries()) {
      let verdict: AcceptedSignature | string
      try {
        verdict = await judge(sig)
      } catch (err) {
        if (!(err instanceof CofferError) || err.code !== 'ERR_SIGN_SIGNATURE_INVALID') throw err
        verdict = err.message
      }
      if (typeof verdict === 'string') reasons.push(`signature ${i + 1}: ${verdict}`)
      else accepted.push(verdict)
    }
    if (accepted.length === 0)
      throw this.denied(scope, `${what}: no signature is accepted (${reasons.slice(0, 5).join('; ')})`)
    return accepted
  }

  private denied(scope: string, why: string): CofferError {
    return new CofferError(
      'ERR_SIGN_POLICY_DENIED',
      `${formatImageName(this.image)} is not allowed by ${scope}: ${why}`,
    )
  }
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 97)}...` : s
}

/**
 * OpenPGP (about 17 MiB and a tenth of a second to load) only for policies that ask for GPG
 * signatures: a pull or verify under a cosign-only policy never loads it.
 */
function loadSimpleSigning(): Promise<typeof import('./simple-signing.js')> {
  return import('./simple-signing.js')
}
