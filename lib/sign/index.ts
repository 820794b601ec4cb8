/**
 * lib/sign: signatures and trust policy. The public surface: parse and evaluate
 * containers-policy.json, read and write signatures, cosign keys.
 */
export {
  evaluate,
  manifestMatchesDigest,
  type EvaluateOptions,
  type EvaluationResult,
  type AcceptedSignature,
} from './evaluate.js'
export {
  parsePolicy,
  loadPolicy,
  type Policy,
  type PolicyRequirement,
  type SignedIdentity,
} from './policy.js'
export { requirementsFor, lookupKeys, type PolicyLookupKeys } from './policy-scope.js'
export { staticSignatures, type Signature, type SignatureSource } from './signature.js'
export { fileKeyResolver, type KeyResolver } from './key-resolver.js'
export { loadRegistriesD, type RegistriesD } from './registries-d.js'
export { openSignedImage, type SignatureAccess, type SignedImage } from './image-signatures.js'
export { signImage, type SigningKey, type SignResult } from './sign-image.js'
export { generateCosignKeyPair, decryptCosignPrivateKey, readCosignPublicKey } from './cosign-key.js'
export { readSigningKey, readPublicKeyrings } from './simple-signing.js'
