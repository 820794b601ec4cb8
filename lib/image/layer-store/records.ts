/**
 * The layer store's small JSON records, validated with zod when read back (a record is written by
 * us, but the store directory may be damaged or tampered with, so it is still untrusted input).
 */
import { z } from 'zod'

const diffId = z.string().regex(/^sha256:[0-9a-f]{64}$/)

/** `layers/sha256/<hex>/layer.json`: written into staging, committed with the layer by one rename. */
export const LayerMetaSchema = z.object({
  schemaVersion: z.literal(1),
  diffId,
  /** Whether whiteouts/opaque dirs exist on disk overlay-style (char 0:0, trusted.overlay.opaque). */
  overlayMarkers: z.boolean(),
  entries: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  whiteouts: z.array(z.string()),
  opaqueDirs: z.array(z.string()),
  externalLinks: z.array(z.object({ path: z.string(), target: z.string() })),
  implicitDirs: z.array(z.string()),
  xattrs: z.record(z.string(), z.record(z.string(), z.string())),
  createdAt: z.string(),
})
export type LayerMeta = z.infer<typeof LayerMetaSchema>

/** `images/<hex of the manifest digest>.json`: which layers (bottom first) an image uses. */
export const ImageRecordSchema = z.object({
  manifestDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  diffIds: z.array(diffId),
  /** The names it was pulled as (`docker://host/repo:tag`), so it can be removed by name. */
  references: z.array(z.string().max(4096)).max(1000).optional(),
})
export type ImageRecord = z.infer<typeof ImageRecordSchema>
