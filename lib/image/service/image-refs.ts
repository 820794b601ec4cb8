/**
 * Which references were pulled as which image: `refs.json` beside the layer store (written
 * atomically; one writer at a time in this process). The layer store knows images by manifest
 * digest; the service answers by reference, as the CRI does.
 */
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic } from '../../util/atomic-file.js'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited } from '../../util/io.js'
import { MiB } from '../../util/limits.js'

const RefSchema = z.object({
  imageDigest: z.string(),
  manifestDigest: z.string(),
  rootfs: z.string().optional(),
  pulledAt: z.string(),
})
const RefsSchema = z.record(z.string(), RefSchema)
export type ImageRef = z.infer<typeof RefSchema>

export class ImageRefs {
  private queue: Promise<unknown> = Promise.resolve()
  constructor(private readonly dir: string) {}

  private get path(): string {
    return join(this.dir, 'refs.json')
  }

  async all(): Promise<Record<string, ImageRef>> {
    const raw = await readOptionalFileLimited(this.path, 16 * MiB, 'image refs', 'ERR_IMAGE_STORE_CORRUPT')
    if (!raw) return {}
    const parsed = RefsSchema.safeParse(JSON.parse(raw.toString('utf8')))
    if (!parsed.success) throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `${this.path} is corrupt`)
    return parsed.data
  }

  /** Applies `change` to the map and writes it back, one change at a time. */
  async update(change: (refs: Record<string, ImageRef>) => void): Promise<void> {
    const next = this.queue.then(async () => {
      const refs = await this.all()
      change(refs)
      await writeFileAtomic(this.path, Buffer.from(JSON.stringify(refs, null, 1)))
    })
    this.queue = next.catch(() => {})
    await next
  }
}
