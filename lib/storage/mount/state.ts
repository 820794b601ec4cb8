import { createHash } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic } from '../../util/atomic-file.js'

/**
 * What `coffer mount --list` and `coffer umount` know about mounts: one small JSON file per
 * mountpoint in a state directory, written by the serving process once the mount is up and removed
 * when it unmounts. A process that died without cleaning up leaves a stale entry, recognised by
 * its pid being gone (or reused: the process start time is recorded too) or by the mountpoint no
 * longer being a coffer FUSE mount. No key material is ever written here.
 */
export const MountEntrySchema = z.object({
  pid: z.number().int().positive(),
  /** /proc/PID/stat field 22 (start time in clock ticks), so a reused pid is not mistaken. */
  pidStart: z.string(),
  mountpoint: z.string().min(1),
  backing: z.string().min(1),
  kind: z.enum(['ephemeral', 'volume']),
  startedAt: z.string(),
})
export type MountEntry = z.infer<typeof MountEntrySchema>

export interface MountStatus extends MountEntry {
  /** The serving process is gone, or the mountpoint is no longer mounted: nothing serves it. */
  readonly stale: boolean
}

const MAX_ENTRY_BYTES = 64 * 1024

/**
 * $COFFER_MOUNT_STATE_DIR, else $XDG_RUNTIME_DIR/coffer/mounts, else /run/coffer/mounts for root,
 * else a per-user directory under the temp dir.
 */
export function mountStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.COFFER_MOUNT_STATE_DIR) return env.COFFER_MOUNT_STATE_DIR
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'coffer', 'mounts')
  const uid = process.getuid?.() ?? 0
  return uid === 0 ? '/run/coffer/mounts' : join(tmpdir(), `coffer-${uid}`, 'mounts')
}

function entryFile(dir: string, mountpoint: string): string {
  return join(dir, `${createHash('sha256').update(mountpoint).digest('hex').slice(0, 32)}.json`)
}

/** The start time of a live process, or undefined if there is no such process. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] // field 22 overall
  } catch {
    return undefined
  }
}

/** Mountpoints of coffer FUSE mounts (source "coffer", type "fuse"), from /proc/self/mountinfo. */
export async function cofferMountpoints(): Promise<Set<string>> {
  const out = new Set<string>()
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8')
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ')
    if (!pre || !post) continue
    const [fstype, source] = post.split(' ')
    if (fstype === 'fuse' && source === 'coffer') out.add(unescapeMountinfo(pre.split(' ')[4] ?? ''))
  }
  return out
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 …). */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export async function writeMountEntry(dir: string, e: MountEntry): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  await writeFileAtomic(entryFile(dir, e.mountpoint), `${JSON.stringify(e)}\n`, 0o600)
}

export async function removeMountEntry(dir: string, mountpoint: string): Promise<void> {
  await fs.rm(entryFile(dir, mountpoint), { force: true })
}

/** Every recorded mount with its staleness; unreadable or malformed entries are skipped. */
export async function listMounts(dir: string): Promise<MountStatus[]> {
  let names: string[]
  try {
    names = await fs.readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const mounted = await cofferMountpoints()
  const out: MountStatus[] = []
  for (const name of names.filter((n) => /^[0-9a-f]{32}\.json$/.test(n)).sort()) {
    let entry: MountEntry
    try {
      const raw = await fs.readFile(join(dir, name))
      if (raw.length > MAX_ENTRY_BYTES) continue
      entry = MountEntrySchema.parse(JSON.parse(raw.toString('utf8')))
    } catch {
      continue
    }
    const alive = (await processStartTime(entry.pid)) === entry.pidStart
    out.push({ ...entry, stale: !alive || !mounted.has(entry.mountpoint) })
  }
  return out
}

export async function findMount(dir: string, mountpoint: string): Promise<MountStatus | undefined> {
  return (await listMounts(dir)).find((m) => m.mountpoint === mountpoint)
}
