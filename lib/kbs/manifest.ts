/**
 * The workload manifest (after MarbleRun's): one declarative document that names each workload by
 * what it runs (its TEE and measured claims) and lists the resources it may get, plus secrets the
 * KBS generates itself, so that no administrator ever holds them. Applying a manifest
 *
 *   - generates every `generated` secret that does not exist yet (never replacing one), and locks
 *     it: the admin API can no longer overwrite or delete it;
 *   - compiles the workloads into the resource policy (one allow rule per workload; anything not
 *     granted is denied) and installs it.
 *
 * Example:
 *   {"version": "coffer.dev/kbs-manifest/v1",
 *    "workloads": {"web": {"tee": "tpm", "claims": {"pcrs.11": ["9f86…"]},
 *                          "resources": ["default/key/web", "default/secret/db"]}},
 *    "secrets": {"default/key/web": {"type": "symmetric-key", "bits": 256},
 *                "default/keypair/signer": {"type": "ec-p256"}}}
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import { POLICY_VERSION, ResourcePolicy, type ResourcePolicyDocument } from './resource-policy.js'

export const MANIFEST_VERSION = 'coffer.dev/kbs-manifest/v1'

const RESOURCE =
  /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const CLAIM_PATH = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.([A-Za-z_][A-Za-z0-9_]{0,63}|\d{1,4})){0,7}$/

const WorkloadSchema = z.strictObject({
  tee: z.enum(['sample', 'tpm', 'snp', 'tdx', 'sgx', 'az-snp-vtpm', 'az-tdx-vtpm', 'cca', 'csv', 'se']),
  /** Lowest acceptable EAR status (default affirming). `any` is for the sample TEE and tests. */
  status: z.enum(['affirming', 'warning', 'any']).default('affirming'),
  /** Verifier claims that identify the workload: dotted path → accepted values. */
  claims: z
    .record(
      z.string().regex(CLAIM_PATH, 'a claim path is dotted names and indexes, e.g. pcrs.11'),
      z
        .array(z.union([z.string().max(1024), z.number(), z.boolean()]))
        .min(1)
        .max(256),
    )
    .default({}),
  resources: z.array(z.string().regex(RESOURCE, 'a resource is <repository>/<type>/<tag>')).min(1).max(1024),
})

const SecretSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('symmetric-key'),
    bits: z.union([z.literal(128), z.literal(192), z.literal(256), z.literal(512)]).default(256),
  }),
  z.strictObject({ type: z.literal('ec-p256') }),
  z.strictObject({ type: z.literal('ed25519') }),
  z.strictObject({
    type: z.literal('rsa'),
    bits: z.union([z.literal(2048), z.literal(3072), z.literal(4096)]).default(3072),
  }),
])
export type SecretSpec = z.infer<typeof SecretSchema>

export const ManifestSchema = z.strictObject({
  version: z.literal(MANIFEST_VERSION),
  workloads: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), WorkloadSchema),
  secrets: z
    .record(
      z.string().regex(RESOURCE, 'a secret is named by its resource path <repository>/<type>/<tag>'),
      SecretSchema,
    )
    .default({}),
})
export type Manifest = z.infer<typeof ManifestSchema>

export function parseManifest(text: string): Manifest {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new CofferError('ERR_KBS_POLICY_INVALID', 'the manifest is not valid JSON')
  }
  const r = ManifestSchema.safeParse(json)
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new CofferError(
      'ERR_KBS_POLICY_INVALID',
      `invalid manifest at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    )
  }
  return r.data
}

/** The resource policy a manifest stands for; parsed again so it is known to compile. */
export function manifestPolicy(m: Manifest): ResourcePolicyDocument {
  const rules = Object.entries(m.workloads).map(([name, w]) => {
    const conditions = [`tee == ${JSON.stringify(w.tee)}`]
    if (w.status === 'affirming') conditions.push('status == "affirming"')
    if (w.status === 'warning') conditions.push('status in ["affirming", "warning"]')
    for (const [path, values] of Object.entries(w.claims))
      conditions.push(`${celPath(path)} in ${JSON.stringify(values)}`)
    return {
      name: `workload ${name}`,
      effect: 'allow' as const,
      resources: w.resources,
      when: conditions.join(' && '),
    }
  })
  const doc: ResourcePolicyDocument = { version: POLICY_VERSION, rules }
  ResourcePolicy.parse(JSON.stringify(doc))
  return doc
}

/** `pcrs.11` → `evidence.pcrs[11]`. Segments were validated by CLAIM_PATH, so this cannot inject. */
function celPath(path: string): string {
  return `evidence${path
    .split('.')
    .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`))
    .join('')}`
}

/** A new secret's bytes (keys as PKCS#8 PEM), and its public half to show the administrator. */
export function generateSecret(spec: SecretSpec): { value: Buffer; publicKey?: string } {
  if (spec.type === 'symmetric-key') return { value: randomBytes(spec.bits / 8) }
  const pair =
    spec.type === 'ec-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : spec.type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: spec.bits })
  return {
    value: Buffer.from(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  }
}
