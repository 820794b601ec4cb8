import { z } from 'zod'
import { isDigest, type Digest } from './digest.js'

/**
 * zod schemas for the documents coffer reads from untrusted sources (image-spec v1.1:
 * `descriptor.md`, `manifest.md`, `image-index.md`, `config.md`; Docker v2 schema 2).
 * Unknown fields are kept (`loose`), because a copy must not drop what it does not understand;
 * the bytes are never re-serialized anyway: manifests travel byte for byte.
 */

export const digestSchema = z
  .string()
  .refine(isDigest, { message: 'not a valid sha256/sha512 digest' }) as unknown as z.ZodType<Digest>

const annotations = z.record(z.string(), z.string())

export const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
})
export type Platform = z.infer<typeof platformSchema>

export const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest: digestSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  data: z.string().optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
})
export type Descriptor = z.infer<typeof descriptorSchema>

export const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotations.optional(),
})
export type Manifest = z.infer<typeof manifestSchema>

export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotations.optional(),
})
export type Index = z.infer<typeof indexSchema>

/** Image config: only what coffer relies on is checked; the rest is kept as is. */
export const imageConfigSchema = z.looseObject({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  created: z.string().optional(),
  config: z.looseObject({}).optional(),
  rootfs: z.looseObject({
    type: z.literal('layers'),
    diff_ids: z.array(digestSchema),
  }),
  history: z.array(z.looseObject({})).optional(),
})
export type ImageConfig = z.infer<typeof imageConfigSchema>

/** `oci-layout` file (image-spec `image-layout.md`). */
export const ociLayoutFileSchema = z.looseObject({ imageLayoutVersion: z.string() })

/** One human-readable line per zod issue, with its JSON path. */
export function describeIssues(error: z.ZodError, max = 3): string {
  return error.issues
    .slice(0, max)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ')
}
