import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import { parsePluginSettings } from './plugin-settings.js'
import type { PluginSettings } from './types.js'

/**
 * Vendor trust material for hardware-TEE verifiers (AMD ARK/ASK bundles, the Intel SGX root CA),
 * read from files the operator names in the plugin settings. Verification itself fetches
 * nothing: the roots are whatever these files hold (STYLE §12).
 */

/** A vendor bundle is a few certificates; AMD's `ask_ark_asvk.pem` is ~7 KiB. */
export const MAX_VENDOR_CERT_FILE_BYTES = 256 * 1024
/** One DER certificate inside evidence (AMD VCEK ~1.4 KiB, Intel PCK ~1.2 KiB). */
export const MAX_EVIDENCE_CERT_BYTES = 16 * 1024

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g

/** Certificates split into self-signed roots and the others (intermediates such as AMD's ASK). */
export interface VendorCertificates {
  readonly roots: readonly X509Certificate[]
  readonly intermediates: readonly X509Certificate[]
}

/**
 * Parses every certificate in PEM text (a bundle: any order, text between blocks ignored).
 * Throws `code` when the text holds none or one is malformed.
 */
export function parsePemCertificates(
  text: string,
  what: string,
  code: 'ERR_CONFIG_INVALID' | 'ERR_ATTEST_EVIDENCE_INVALID',
): X509Certificate[] {
  const out: X509Certificate[] = []
  for (const m of text.matchAll(PEM_BLOCK)) {
    out.push(parseDerCertificate(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'), what, code))
  }
  if (out.length === 0) throw new CofferError(code, `${what} holds no PEM certificate`)
  return out
}

/** One DER certificate, or a coded error (never a raw OpenSSL exception). */
export function parseDerCertificate(
  der: Uint8Array,
  what: string,
  code: 'ERR_CONFIG_INVALID' | 'ERR_ATTEST_EVIDENCE_INVALID',
): X509Certificate {
  if (der.length > MAX_EVIDENCE_CERT_BYTES && code === 'ERR_ATTEST_EVIDENCE_INVALID') {
    throw new CofferError(code, `${what} is larger than ${MAX_EVIDENCE_CERT_BYTES} bytes`)
  }
  try {
    return new X509Certificate(der)
  } catch (cause) {
    throw new CofferError(code, `${what} is not a valid X.509 certificate`, { cause })
  }
}

/** A certificate is a root when it names and verifies itself. */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey)
}

/** Reads PEM (one or many certificates) or DER files and sorts roots from intermediates. */
export async function loadVendorCertificates(
  paths: readonly string[],
  owner = 'the verifier',
): Promise<VendorCertificates> {
  if (paths.length === 0) {
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `${owner} has no vendorRoots configured: it trusts no hardware`,
    )
  }
  const roots: X509Certificate[] = []
  const intermediates: X509Certificate[] = []
  for (const path of paths) {
    let bytes: Buffer
    try {
      bytes = await readFile(path)
    } catch (cause) {
      throw new CofferError('ERR_CONFIG_INVALID', `cannot read vendor certificate file ${path}`, { cause })
    }
    if (bytes.length > MAX_VENDOR_CERT_FILE_BYTES) {
      throw new CofferError('ERR_CONFIG_INVALID', `vendor certificate file ${path} is too large`)
    }
    const text = bytes.toString('latin1')
    const certs = text.includes('-----BEGIN CERTIFICATE-----')
      ? parsePemCertificates(text, path, 'ERR_CONFIG_INVALID')
      : [parseDerCertificate(bytes, path, 'ERR_CONFIG_INVALID')]
    for (const c of certs) (isSelfSigned(c) ? roots : intermediates).push(c)
  }
  if (roots.length === 0) {
    throw new CofferError('ERR_CONFIG_INVALID', 'the vendor certificate files hold no self-signed root')
  }
  return { roots, intermediates }
}

/** Whether `now` lies within the certificate's validity period. */
export function isValidAt(cert: X509Certificate, now: Date): boolean {
  const from = Date.parse(cert.validFrom)
  const to = Date.parse(cert.validTo)
  return Number.isFinite(from) && Number.isFinite(to) && from <= now.getTime() && now.getTime() <= to
}

/** `child` names `parent` as its issuer and `parent`'s key verifies its signature. */
export function isIssuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey)
  } catch {
    return false
  }
}

function sameCert(a: X509Certificate, b: X509Certificate): boolean {
  return a.raw.equals(b.raw)
}

/**
 * Verifies a leaf-first path up to one of `roots`: each certificate is issued by the next, every
 * issuer is a CA, all are valid at `now`, and the path ends in a configured root, either because
 * its last element is byte-identical to a root or because a root issued it. Failures are
 * ERR_ATTEST_VERIFICATION_FAILED with `what` naming the chain, never which byte was wrong.
 * Returns the full path including the root.
 */
export function verifyCertificatePath(
  path: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  now: Date,
  what: string,
): X509Certificate[] {
  const fail = (why: string): never => {
    throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', `${what}: ${why}`)
  }
  if (path.length === 0) fail('no certificate')
  const full = [...path]
  const last = full[full.length - 1]!
  const root = roots.find((r) => sameCert(r, last)) ?? roots.find((r) => isIssuedBy(last, r))
  if (!root) fail('the chain does not end in a configured vendor root')
  if (!sameCert(root!, last)) full.push(root!)
  // Defense in depth: the configured root must still sign itself.
  if (!isSelfSigned(root!)) fail('the vendor root is not self-signed')
  for (let i = 0; i + 1 < full.length; i++) {
    if (!isIssuedBy(full[i]!, full[i + 1]!)) fail(`certificate ${i} is not signed by its issuer`)
    if (!full[i + 1]!.ca) fail(`issuer certificate ${i + 1} is not a CA`)
  }
  for (const [i, c] of full.entries())
    if (!isValidAt(c, now)) fail(`certificate ${i} is expired or not yet valid`)
  return full
}

/** Vendor certificates, or how to load them on first use. */
export type VendorCertificateSource = VendorCertificates | (() => Promise<VendorCertificates>)

/**
 * Loads vendor certificates once and keeps them; a failed load (a file not there yet) is not
 * kept, so the next verification tries again.
 */
export function cachedVendorCertificates(source: VendorCertificateSource): () => Promise<VendorCertificates> {
  if (typeof source !== 'function') return () => Promise.resolve(source)
  let pending: Promise<VendorCertificates> | undefined
  return () =>
    (pending ??= source().catch((err: unknown) => {
      pending = undefined
      throw err
    }))
}

/**
 * Settings of a verifier whose trust anchors are vendor certificates (snp, tdx): `vendorRoots`,
 * file paths (a list, or one path). Optional, because the KBS builds every built-in verifier even
 * when its TEE is not configured; such a verifier then refuses all evidence with
 * ERR_CONFIG_INVALID instead of failing the server's start.
 */
export const VendorRootsSettings = z.strictObject({
  vendorRoots: z
    .union([
      z
        .string()
        .min(1)
        .transform((p) => [p]),
      z.array(z.string().min(1)),
    ])
    .default([]),
})

/** The lazily loaded vendor certificates a verifier's settings name. */
export function vendorCertificatesFrom(
  settings: PluginSettings,
  what: string,
): () => Promise<VendorCertificates> {
  const s = parsePluginSettings(VendorRootsSettings, settings, what)
  return () => loadVendorCertificates(s.vendorRoots, what)
}
