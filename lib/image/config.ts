/**
 * Configuration of the in-guest image service (`coffer pull --config`, `coffer image-service serve
 * --config`): a TOML file like the `[image]` section of the CoCo confidential-data-hub's, with every
 * location either a local path or a `kbs:///…` resource fetched after attestation. Every field is
 * optional; a bare `coffer pull` with local keys and a local policy needs no KBS at all.
 */
import { dirname, isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import { readTomlFile } from '../util/toml-file.js'

/** A local file, or a KBS resource (`kbs:///repo/type/tag`). */
const Location = z.string().min(1).max(4096)

export const ImageServiceConfigSchema = z.strictObject({
  /**
   * Holds `store/` (layers, image records) and the service's rootfs trees. Default: the store at
   * /var/lib/coffer/image (root) or ~/.local/share/coffer/image, the trees beside it.
   */
  work_dir: z.string().optional(),
  kbs: z
    .strictObject({
      url: z.string().url(),
      /** tpm, snp, tdx or sample; default: detect (never falls back to sample). */
      attester: z.string().optional(),
      attester_settings: z.record(z.string(), z.string()).default({}),
      tls_verify: z.boolean().default(true),
    })
    .optional(),
  image: z
    .strictObject({
      /** containers-policy.json; checked before any layer is fetched. Required unless insecure_accept_anything. */
      policy: Location.optional(),
      /** registries.d directory (file) or a single YAML (kbs:///…): lookaside and sigstore attachments. */
      registries_d: Location.optional(),
      /** containers auth.json for pulls (a KBS one is kept in memory); `--authfile` / `--creds` win. */
      auth: Location.optional(),
      /** One registries.conf (mirrors, blocked registries; no `.d` drop-ins); `--registries-conf` wins. */
      registries_conf: Location.optional(),
      /** Accept images without checking signatures; must be asked for by name. */
      insecure_accept_anything: z.boolean().default(false),
      max_concurrent_layers: z.number().int().min(1).max(32).default(3),
    })
    .prefault({}),
  limits: z
    .strictObject({
      max_layer_bytes: z
        .number()
        .int()
        .positive()
        .default(8 * 2 ** 30),
      /** The sum of the manifest's layer sizes, checked before any layer is fetched. */
      max_image_bytes: z
        .number()
        .int()
        .positive()
        .default(32 * 2 ** 30),
      max_entries_per_layer: z.number().int().positive().default(1_000_000),
    })
    .prefault({}),
})
export type ImageServiceConfig = z.infer<typeof ImageServiceConfigSchema>

/** True when `location` names a KBS resource rather than a file. */
export const isKbsLocation = (location: string): boolean => /^kbs(\+[a-z0-9_-]+)?:\/\//.test(location)

export function parseImageServiceConfig(doc: unknown, baseDir: string): ImageServiceConfig {
  const r = ImageServiceConfigSchema.safeParse(doc ?? {})
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `invalid image service config at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    )
  }
  const c = r.data
  const abs = (p: string | undefined): string | undefined =>
    p === undefined || isKbsLocation(p) || isAbsolute(p) ? p : resolve(baseDir, p.replace(/^file:\/\//, ''))
  const image = { ...c.image }
  for (const k of ['policy', 'registries_d', 'auth', 'registries_conf'] as const) {
    const v = abs(image[k])
    if (v === undefined) delete image[k]
    else image[k] = v
  }
  if (!image.policy && !image.insecure_accept_anything)
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      'the image service needs image.policy (a file or kbs:///…), or image.insecure_accept_anything = true',
    )
  const needsKbs = Object.values(image).some((v) => typeof v === 'string' && isKbsLocation(v))
  if (needsKbs && !c.kbs) throw new CofferError('ERR_CONFIG_INVALID', 'kbs:/// locations need a [kbs] url')
  return { ...c, ...(c.work_dir ? { work_dir: abs(c.work_dir)! } : {}), image }
}

export async function loadImageServiceConfig(path: string): Promise<ImageServiceConfig> {
  const doc = await readTomlFile(path, 'image service config', 'ERR_CONFIG_INVALID')
  return parseImageServiceConfig(doc, dirname(resolve(path)))
}
