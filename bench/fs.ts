/**
 * Encrypted-storage throughput: fio sequential 1 MiB read/write, random 4 KiB read/write, and
 * extracting a 20,000-file tree with tar, on three targets in the same run: a plain directory,
 * a Debian gocryptfs 2.3 mount and a coffer mount (each FUSE server in its own process; fio and
 * tar run as their own processes too). Page caches are dropped before each read job where the
 * kernel allows it, so reads go through the FUSE server and decrypt.
 *
 * Each fio job runs in rounds (default 3) that take the targets in turn, in an order that rotates
 * from round to round, and the table shows each target's median: on a shared VM the machine's
 * speed drifts by 2× within minutes, and measuring all of one target before the next let that
 * drift decide the ratio.
 *
 * Goals (issue 8): coffer ≥ 1.0× gocryptfs's sequential throughput, ≥ 0.7× its random 4 KiB IOPS.
 * Run alone: `node dist/bench/fs.js [--size-mib N] [--runtime S] [--rounds N]` (after `npm run build`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createVolume } from '../lib/storage/open-volume.js'
import { treePeakRssKiB } from './measure.js'

const execFileP = promisify(execFile)

export interface FsBenchRow {
  target: 'plain' | 'gocryptfs' | 'coffer'
  seqWriteMiBs: number
  seqReadMiBs: number
  randWriteIops: number
  randReadIops: number
  treeSeconds: number
  /** Peak RSS of the FUSE server's process tree; undefined for the plain directory. */
  serverPeakRssMiB?: number
}

export const FS_GOALS = { seqVsGocryptfs: 1.0, randVsGocryptfs: 0.7 }
const TREE_FILES = 20_000
const PASS = 'bench passphrase'

interface FioJob {
  name: string
  rw: 'write' | 'read' | 'randwrite' | 'randread'
  bs: string
}

async function fio(
  dir: string,
  job: FioJob,
  sizeMiB: number,
  runtime: number,
): Promise<{ mibs: number; iops: number }> {
  const args = [
    `--name=${job.name}`,
    `--directory=${dir}`,
    `--filename=${job.rw.includes('rand') ? 'rand.dat' : 'seq.dat'}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--size=${sizeMiB}m`,
    '--ioengine=psync',
    '--numjobs=1',
    '--output-format=json',
    ...(job.rw.includes('write') ? ['--end_fsync=1'] : []),
    ...(job.rw.includes('rand') ? ['--time_based=1', `--runtime=${runtime}`] : []),
  ]
  const { stdout } = await execFileP('fio', args, { maxBuffer: 16 * 1024 * 1024 })
  const j = JSON.parse(stdout) as {
    jobs: { read: { bw: number; iops: number }; write: { bw: number; iops: number } }[]
  }
  const side = job.rw.includes('write') ? j.jobs[0]!.write : j.jobs[0]!.read
  return { mibs: side.bw / 1024, iops: side.iops }
}

async function dropCaches(): Promise<void> {
  await execFileP('sync').catch(() => undefined)
  await writeFile('/proc/sys/vm/drop_caches', '3').catch(() => undefined)
}

/** A tar of TREE_FILES small files (0..8 KiB) in 200 directories, made once with tar(1). */
async function makeTree(work: string): Promise<string> {
  const src = join(work, 'tree-src')
  for (let d = 0; d < 200; d++) {
    const dir = join(src, `dir-${d}`)
    await mkdir(dir, { recursive: true })
    await Promise.all(
      Array.from({ length: TREE_FILES / 200 }, (_, f) => {
        const size = createHash('sha256').update(`${d}/${f}`).digest().readUInt16LE(0) % 8192
        return writeFile(join(dir, `file-${f}.txt`), Buffer.alloc(size, f % 251))
      }),
    )
  }
  const tarball = join(work, 'tree.tar')
  await execFileP('tar', ['-cf', tarball, '-C', src, '.'])
  await rm(src, { recursive: true })
  return tarball
}

async function extract(tarball: string, dir: string): Promise<number> {
  const target = join(dir, 'tree')
  await mkdir(target)
  const t0 = process.hrtime.bigint()
  await execFileP('tar', ['-xf', tarball, '-C', target])
  await execFileP('sync')
  return Number(process.hrtime.bigint() - t0) / 1e9
}

type Target = FsBenchRow['target']
type JobKey = 'seqWrite' | 'seqRead' | 'randWrite' | 'randRead'
const JOBS: { key: JobKey; job: FioJob; rand: boolean }[] = [
  { key: 'seqWrite', job: { name: 'seqwrite', rw: 'write', bs: '1m' }, rand: false },
  { key: 'seqRead', job: { name: 'seqread', rw: 'read', bs: '1m' }, rand: false },
  { key: 'randWrite', job: { name: 'randwrite', rw: 'randwrite', bs: '4k' }, rand: true },
  { key: 'randRead', job: { name: 'randread', rw: 'randread', bs: '4k' }, rand: true },
]

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * Every fio job on every target, `rounds` times, the targets' order rotating each round; each
 * target's median. Read jobs read what the write job before them wrote, after dropping caches.
 */
async function measureAll(
  dirs: Map<Target, string>,
  sizeMiB: number,
  runtime: number,
  rounds: number,
): Promise<Map<Target, Record<JobKey, number>>> {
  const targets = [...dirs.keys()]
  const samples = new Map(targets.map((t) => [t, new Map(JOBS.map((j) => [j.key, [] as number[]]))]))
  for (const { key, job, rand } of JOBS) {
    for (let round = 0; round < rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!)
      for (const t of order) {
        if (job.rw.includes('read')) await dropCaches()
        const r = await fio(dirs.get(t)!, job, rand ? Math.min(64, sizeMiB) : sizeMiB, runtime)
        samples
          .get(t)!
          .get(key)!
          .push(rand ? r.iops : r.mibs)
      }
    }
  }
  return new Map(
    targets.map((t) => {
      const m = samples.get(t)!
      return [
        t,
        Object.fromEntries(JOBS.map((j) => [j.key, median(m.get(j.key)!)])) as Record<JobKey, number>,
      ]
    }),
  )
}

async function startCoffer(
  cofferBin: string,
  cipher: string,
  mnt: string,
  passfile: string,
  state: string,
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [cofferBin, 'mount', '--json', '--volume', cipher, mnt, '--passphrase-file', passfile],
    {
      env: { ...process.env, COFFER_MOUNT_STATE_DIR: state },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.includes('"mounted"')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`coffer mount exited ${code}`)))
  })
  return child
}

/** `gocryptfs -fg`, resolved once it reports the mount ready. */
async function startGocryptfs(cipher: string, mnt: string, passfile: string): Promise<ChildProcess> {
  const child = spawn('gocryptfs', ['-fg', '-passfile', passfile, cipher, mnt], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.includes('mounted and ready')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`gocryptfs exited ${code}`)))
  })
  return child
}

export async function benchFs(
  cofferBin: string,
  o: { sizeMiB?: number; runtime?: number; rounds?: number } = {},
): Promise<FsBenchRow[]> {
  const sizeMiB = o.sizeMiB ?? 256
  const runtime = o.runtime ?? 4
  const rounds = o.rounds ?? 3
  const work = await mkdtemp(join(tmpdir(), 'coffer-fs-bench-'))
  const passfile = join(work, 'pass')
  await writeFile(passfile, `${PASS}\n`)
  let coffer: ChildProcess | undefined
  let gocryptfs: ChildProcess | undefined
  const mounted: string[] = []
  try {
    const tarball = await makeTree(work)
    for (const d of ['plain', 'g-cipher', 'g-mnt', 'c-cipher', 'c-mnt']) await mkdir(join(work, d))
    await execFileP('gocryptfs', [
      '-init',
      '-q',
      '-scryptn',
      '10',
      '-passfile',
      passfile,
      join(work, 'g-cipher'),
    ])
    // In the foreground (-fg), so the server is our child and its peak RSS can be read.
    gocryptfs = await startGocryptfs(join(work, 'g-cipher'), join(work, 'g-mnt'), passfile)
    mounted.push(join(work, 'g-mnt'))
    ;(await createVolume(join(work, 'c-cipher'), Buffer.from(PASS), { scryptLogN: 10 })).close()
    coffer = await startCoffer(
      cofferBin,
      join(work, 'c-cipher'),
      join(work, 'c-mnt'),
      passfile,
      join(work, 'state'),
    )
    const dirs = new Map<Target, string>([
      ['plain', join(work, 'plain')],
      ['gocryptfs', join(work, 'g-mnt')],
      ['coffer', join(work, 'c-mnt')],
    ])
    const medians = await measureAll(dirs, sizeMiB, runtime, rounds)
    const pids = new Map<Target, number | undefined>([
      ['plain', undefined],
      ['gocryptfs', gocryptfs.pid],
      ['coffer', coffer.pid],
    ])
    const rows: FsBenchRow[] = []
    for (const [target, dir] of dirs) {
      const m = medians.get(target)!
      const pid = pids.get(target)
      rows.push({
        target,
        seqWriteMiBs: m.seqWrite,
        seqReadMiBs: m.seqRead,
        randWriteIops: m.randWrite,
        randReadIops: m.randRead,
        treeSeconds: await extract(tarball, dir),
        ...(pid === undefined ? {} : { serverPeakRssMiB: treePeakRssKiB(pid) / 1024 }),
      })
    }
    return rows
  } finally {
    if (coffer && coffer.exitCode === null) {
      coffer.kill('SIGTERM')
      await new Promise((r) => coffer!.once('exit', r))
    }
    for (const m of mounted) await execFileP('fusermount', ['-uz', m]).catch(() => undefined)
    if (gocryptfs && gocryptfs.exitCode === null) {
      gocryptfs.kill('SIGTERM')
      await new Promise((r) => gocryptfs!.once('exit', r))
    }
    await rm(work, { recursive: true, force: true })
  }
}

export function fsTable(rows: FsBenchRow[]): string {
  const g = rows.find((r) => r.target === 'gocryptfs')
  const c = rows.find((r) => r.target === 'coffer')
  const ratio = (a: number, b: number | undefined): string => (b ? `${(a / b).toFixed(2)}×` : '')
  const lines = [
    '| target | seq write 1 MiB | seq read 1 MiB | rand write 4 KiB | rand read 4 KiB | 20,000-file tar -x | server peak RSS |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${r.seqWriteMiBs.toFixed(0)} MiB/s | ${r.seqReadMiBs.toFixed(0)} MiB/s | ${r.randWriteIops.toFixed(0)} IOPS | ${r.randReadIops.toFixed(0)} IOPS | ${r.treeSeconds.toFixed(1)} s | ${r.serverPeakRssMiB === undefined ? '' : `${r.serverPeakRssMiB.toFixed(0)} MiB`} |`,
    ),
  ]
  if (g && c)
    lines.push(
      `| coffer / gocryptfs | ${ratio(c.seqWriteMiBs, g.seqWriteMiBs)} | ${ratio(c.seqReadMiBs, g.seqReadMiBs)} | ${ratio(c.randWriteIops, g.randWriteIops)} | ${ratio(c.randReadIops, g.randReadIops)} | ${ratio(g.treeSeconds, c.treeSeconds)} (speed) | |`,
      '',
      `Goals: sequential ≥ ${FS_GOALS.seqVsGocryptfs}× gocryptfs, random 4 KiB ≥ ${FS_GOALS.randVsGocryptfs}× gocryptfs IOPS.`,
    )
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name)
    return i === -1 ? undefined : Number(process.argv[i + 1])
  }
  const bin = fileURLToPath(new URL('../cli/main.js', import.meta.url))
  const sizeMiB = arg('--size-mib')
  const runtime = arg('--runtime')
  const rounds = arg('--rounds')
  benchFs(bin, {
    ...(sizeMiB ? { sizeMiB } : {}),
    ...(runtime ? { runtime } : {}),
    ...(rounds ? { rounds } : {}),
  })
    .then((rows) => {
      console.log(fsTable(rows))
      console.log(JSON.stringify(rows))
    })
    .catch((err: unknown) => {
      console.error(err)
      process.exitCode = 1
    })
}
