/**
 * What the node service has mounted, one record per path, kept in memory and in
 * `<state-dir>/node/<sha256(path)>.json` so NodeUnpublish/NodeUnstage still know what to undo
 * after a driver restart. A record is written after its mount succeeded and removed after its
 * unmount succeeded; the kernel's mount table (mountinfo) stays the truth about "is it mounted".
 */
import { createHash } from 'node:crypto'
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic } from '../util/atomic-file.js'
import { readOptionalFileLimited } from '../util/io.js'
import { KiB } from '../util/limits.js'

const mountRecordSchema = z.object({
  path: z.string().startsWith('/'),
  volumeId: z.string().min(1),
  /** staged: the FUSE server of a persistent volume; bound: its bind into a pod; ephemeral: an inline volume. */
  kind: z.enum(['staged', 'bound', 'ephemeral']),
  readonly: z.boolean(),
  /** Identifies the request's arguments: a repeat with other arguments is ALREADY_EXISTS. */
  fingerprint: z.string(),
  /** ephemeral: its ciphertext directory (removed by the server at unmount). */
  backing: z.string().optional(),
})

export type MountRecord = z.infer<typeof mountRecordSchema>

export class NodeState {
  readonly #records = new Map<string, MountRecord>()

  constructor(readonly dir: string) {}

  /** Loads the records; one that cannot be parsed is dropped (its mount, if any, is left alone). */
  async open(): Promise<this> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.json')) continue
      const raw = await readOptionalFileLimited(
        join(this.dir, name),
        16 * KiB,
        'mount record',
        'ERR_CSI_STATE_CORRUPT',
      ).catch(() => undefined) // unreadable or oversized: dropped like a malformed one
      const parsed = mountRecordSchema.safeParse(
        raw === undefined ? undefined : safeJson(raw.toString('utf8')),
      )
      if (parsed.success) this.#records.set(parsed.data.path, parsed.data)
      else await rm(join(this.dir, name), { force: true })
    }
    return this
  }

  get(path: string): MountRecord | undefined {
    return this.#records.get(path)
  }

  /** Every record of `volumeId`. */
  ofVolume(volumeId: string): MountRecord[] {
    return [...this.#records.values()].filter((r) => r.volumeId === volumeId)
  }

  async put(record: MountRecord): Promise<void> {
    await writeFileAtomic(this.fileOf(record.path), `${JSON.stringify(record)}\n`, 0o600)
    this.#records.set(record.path, record)
  }

  async remove(path: string): Promise<void> {
    await rm(this.fileOf(path), { force: true })
    this.#records.delete(path)
  }

  private fileOf(path: string): string {
    return join(this.dir, `${createHash('sha256').update(path, 'utf8').digest('hex')}.json`)
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}
