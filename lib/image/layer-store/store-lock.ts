/**
 * The layer store's lock between pulls and gc, across processes (`coffer pull`, the image service,
 * `coffer image-service gc`): any number of pulls hold it shared, gc holds it exclusive. A pull holds
 * it from its first look at the store until its image record is written, so gc never sees a layer
 * a pull has found (or just unpacked) but not yet recorded.
 *
 * Each holder is a file `locks/{shared,exclusive}/<pid>-<rand>`; a file whose process is gone
 * (kill -9) is ignored and removed. Acquiring writes one's own file first and then looks for the
 * other kind, so of a pull and a gc starting together at least one sees the other (Dekker). A
 * waiting gc keeps its file, so new pulls wait behind it and a busy service cannot starve gc; of two
 * waiting gcs the one with the larger name steps aside, so they cannot wait on each other. Waiting polls (no inotify: the store may be on any
 * file system) and ends on the caller's signal.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { CofferError } from '../../util/errors.js'
import { throwIfAborted, type Io } from '../../util/io.js'

/** Lock files this process holds now (its own pid cannot be probed with kill). */
const HELD = new Set<string>()
const POLL_MS = 100

export interface StoreLock {
  release(): Promise<void>
}

export interface StoreLockOptions extends Io {
  /** Called once if the lock is not free at once, with how many holders are in the way. */
  onWait?: (holders: number) => void
}

/** Shared: for a pull. Waits while a gc holds (or waits for) the lock. */
export async function lockStoreShared(root: string, o: StoreLockOptions = {}): Promise<StoreLock> {
  const dirs = await lockDirs(root)
  let waited = false
  for (;;) {
    const mine = await createHolder(dirs.shared)
    const gcs = await liveHolders(dirs.exclusive)
    if (gcs.length === 0) return mine
    await mine.release()
    if (!waited) o.onWait?.(gcs.length)
    waited = true
    await pause(o)
  }
}

/** Exclusive: for gc. Waits until no pull and no other gc holds the lock. */
export async function lockStoreExclusive(root: string, o: StoreLockOptions = {}): Promise<StoreLock> {
  const dirs = await lockDirs(root)
  let waited = false
  let mine = await createHolder(dirs.exclusive)
  try {
    for (;;) {
      const gcs = (await liveHolders(dirs.exclusive)).filter((n) => n !== mine.name)
      const pulls = await liveHolders(dirs.shared)
      if (gcs.length === 0 && pulls.length === 0) return mine
      if (!waited) o.onWait?.(gcs.length + pulls.length)
      waited = true
      if (gcs.some((n) => n < mine.name)) {
        // Step aside for a gc with a smaller name, so two waiting gcs cannot wait on each other.
        await mine.release()
        await pause(o)
        mine = await createHolder(dirs.exclusive)
      } else await pause(o)
    }
  } catch (err) {
    await mine.release()
    throw err
  }
}

async function lockDirs(root: string): Promise<{ shared: string; exclusive: string }> {
  const shared = join(root, 'locks', 'shared')
  const exclusive = join(root, 'locks', 'exclusive')
  await mkdir(shared, { recursive: true, mode: 0o700 })
  await mkdir(exclusive, { recursive: true, mode: 0o700 })
  return { shared, exclusive }
}

async function createHolder(dir: string): Promise<StoreLock & { name: string }> {
  const name = `${process.pid}-${randomBytes(8).toString('hex')}`
  const path = join(dir, name)
  HELD.add(name)
  try {
    await writeFile(path, '', { flag: 'wx', mode: 0o600 })
  } catch (err) {
    HELD.delete(name)
    throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `cannot create the store lock ${path}`, { cause: err })
  }
  let released = false
  return {
    name,
    async release() {
      if (released) return
      released = true
      await rm(path, { force: true })
      HELD.delete(name)
    },
  }
}

/** Holders whose process is alive; the files of dead ones are removed on the way. */
async function liveHolders(dir: string): Promise<string[]> {
  const live: string[] = []
  for (const name of await readdir(dir)) {
    if (holderAlive(name)) live.push(name)
    else await rm(join(dir, name), { force: true })
  }
  return live
}

/** `<pid>-<rand>`: alive while <pid> exists (EPERM: it exists, not ours); our own pid: while held. */
function holderAlive(name: string): boolean {
  const pid = Number(/^(\d+)-/.exec(name)?.[1])
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  if (pid === process.pid) return HELD.has(name)
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function pause(o: Io): Promise<void> {
  throwIfAborted(o.signal)
  try {
    await sleep(
      POLL_MS + Math.floor(Math.random() * POLL_MS),
      undefined,
      o.signal ? { signal: o.signal } : {},
    )
  } catch (err) {
    throwIfAborted(o.signal)
    throw err
  }
}
