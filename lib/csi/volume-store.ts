/**
 * The persistent volumes of this node (the minimal Controller's data): one directory per volume
 * under `<state-dir>/volumes/`, holding `volume.json` (name, capacity, where the key comes from)
 * and `backing/` (the gocryptfs ciphertext). A volume becomes visible only by the rename of a
 * fully formatted directory, so a crash mid-create leaves no half volume behind, only a `.tmp-*`
 * directory that the next start removes.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic } from '../util/atomic-file.js'
import { CofferError } from '../util/errors.js'
import { readOptionalFileLimited, type Io } from '../util/io.js'
import { KiB } from '../util/limits.js'
import type { VolumeFormatter, VolumeKey } from './volume-mounter.js'

/** IDs this store hands out: a hash of the CO's volume name, so a retried CreateVolume finds it. */
const VOLUME_ID = /^cv-[0-9a-f]{32}$/
const MAX_VOLUME_RECORD_BYTES = 16 * KiB

const volumeKeySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('passphrase-file'), path: z.string().min(1) }),
  z.object({
    kind: z.literal('kbs'),
    uri: z.string().startsWith('kbs:///'),
    kbsUrl: z.string().optional(),
    attester: z.string().optional(),
  }),
])

const volumeRecordSchema = z.object({
  volumeId: z.string().regex(VOLUME_ID),
  name: z.string().min(1),
  capacityBytes: z.number().int().nonnegative(),
  key: volumeKeySchema,
})

export type VolumeRecord = z.infer<typeof volumeRecordSchema>

export interface CreatedVolume {
  record: VolumeRecord
  /** false when a volume of that name already existed (an idempotent retry). */
  created: boolean
}

export class VolumeStore {
  constructor(
    readonly root: string,
    private readonly formatter: VolumeFormatter,
  ) {}

  /** Creates the root and removes what an interrupted create or delete left. */
  async open(): Promise<this> {
    await mkdir(this.root, { recursive: true, mode: 0o700 })
    for (const e of await readdir(this.root))
      if (e.startsWith('.tmp-') || e.startsWith('.deleting-'))
        await rm(join(this.root, e), { recursive: true, force: true })
    return this
  }

  idFor(name: string): string {
    return `cv-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32)}`
  }

  /** The volume's ciphertext directory. */
  backingOf(volumeId: string): string {
    return join(this.dirOf(volumeId), 'backing')
  }

  /** The record of `volumeId`, or undefined for an unknown (or malformed) ID. */
  async get(volumeId: string): Promise<VolumeRecord | undefined> {
    if (!VOLUME_ID.test(volumeId)) return undefined
    const path = join(this.dirOf(volumeId), 'volume.json')
    try {
      const raw = await readOptionalFileLimited(
        path,
        MAX_VOLUME_RECORD_BYTES,
        'volume record',
        'ERR_CSI_STATE_CORRUPT',
      )
      if (raw === undefined) return undefined
      return volumeRecordSchema.parse(JSON.parse(raw.toString('utf8')))
    } catch (cause) {
      throw new CofferError('ERR_CSI_STATE_CORRUPT', `${path} is not a valid volume record`, { cause })
    }
  }

  /**
   * Creates volume `name`, or returns the existing one if it has the same capacity
   * (`ERR_CSI_VOLUME_CONFLICT` if not). Callers serialise per name.
   */
  async create(name: string, capacityBytes: number, key: VolumeKey, o: Io = {}): Promise<CreatedVolume> {
    const volumeId = this.idFor(name)
    const existing = await this.get(volumeId)
    if (existing) {
      if (existing.name !== name || existing.capacityBytes !== capacityBytes)
        throw new CofferError(
          'ERR_CSI_VOLUME_CONFLICT',
          `volume ${name} exists with ${existing.capacityBytes} bytes, not ${capacityBytes}`,
        )
      return { record: existing, created: false }
    }
    const record: VolumeRecord = { volumeId, name, capacityBytes, key }
    const tmp = join(this.root, `.tmp-${randomBytes(8).toString('hex')}`)
    try {
      await mkdir(join(tmp, 'backing'), { recursive: true, mode: 0o700 })
      await this.formatter.format(join(tmp, 'backing'), key, o)
      await writeFileAtomic(join(tmp, 'volume.json'), `${JSON.stringify(record, null, 2)}\n`, 0o600)
      await rename(tmp, this.dirOf(volumeId))
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      throw err
    }
    return { record, created: true }
  }

  /** Removes a volume and its data; an unknown ID is not an error (DeleteVolume is idempotent). */
  async delete(volumeId: string): Promise<void> {
    if (!VOLUME_ID.test(volumeId)) return
    const gone = join(this.root, `.deleting-${randomBytes(8).toString('hex')}`)
    try {
      await rename(this.dirOf(volumeId), gone)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    await rm(gone, { recursive: true, force: true })
  }

  private dirOf(volumeId: string): string {
    return join(this.root, volumeId)
  }
}
