/**
 * `npm run bench`: coffer against the real peer tools on this machine, in one run, written as one
 * table to `bench/RESULTS.md`:
 *   - copy (layout ↔ registry), encrypt and decrypt of a 512 MiB image: coffer vs skopeo (here);
 *   - the guest's pull + decrypt + unpack: coffer pull vs skopeo copy + umoci unpack (bench/pull.ts);
 *   - the key broker under load: no peer runs here, absolute goals (bench/kbs-load.ts);
 *   - the encrypted filesystem: coffer mount vs gocryptfs with fio and tar (bench/fs.ts).
 * COFFER_BENCH_ONLY=copy,crypt,pull,kbs,fs runs a subset (the report then says it is partial).
 *
 * For copy, encrypt and decrypt:
 *
 *   1. the image (8 gzip'd layers of 64 MiB) comes from `bench/.cache/`, generated on first use;
 *   2. a registry starts in a temp dir, and an unmeasured skopeo push fills it (the pull source);
 *   3. each direction runs RUNS times per tool, alternating which tool goes first. Every push goes
 *      to a registry of its own, started empty for it: on one registry skopeo would not upload at
 *      all, since its blob-info cache (/var/lib/containers/cache) remembers where the blobs already
 *      are and it mounts them from there. Every pull goes into a new directory. Each run is checked
 *      to have moved every blob: coffer's `--json` `blobsCopied`, skopeo's "Copying blob" lines, the
 *      bytes the process moved through syscalls (/proc/<pid>/io) and, for pulls, the bytes on disk;
 *   4. the table (median time, max peak RSS, ratios, goals) goes to stdout and `bench/RESULTS.md`.
 *
 * The registry and the temp dirs go away on exit, on error and on SIGINT/SIGTERM; the cached
 * image stays. Environment knobs: COFFER_BENCH_LAYERS, COFFER_BENCH_LAYER_MIB, COFFER_BENCH_RUNS
 * for quick trials (they still write RESULTS.md, so do not commit that one), and
 * COFFER_BENCH_TMPDIR for where registry storage and pulled layouts go (default: the OS temp dir),
 * and COFFER_BENCH_ONLY (e.g. `encrypt,decrypt`) to run only some rows.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalRegistry, type LocalRegistry } from '../cli/demo/local-registry.js'
import { MiB } from '../lib/util/limits.js'
import { ensureBenchImage, shapeName, type BenchImage, type ImageShape } from './image.js'
import { measure, type Measurement } from './measure.js'
import { generateKeyPair } from '../lib/crypt/keys.js'
import { benchFs, fsTable } from './fs.js'
import { benchKbs, kbsTable } from './kbs-load.js'
import { benchPull, pullTable } from './pull.js'
import { copyRow, fsRows, kbsRows, pullRow, summaryTable, type SummaryRow } from './summary.js'
import {
  COPY_GOALS,
  CRYPT_GOALS,
  describeMachine,
  resultsTable,
  runsTable,
  type Goals,
  type Row,
} from './report.js'

const SHAPE: ImageShape = {
  layers: envInt('COFFER_BENCH_LAYERS', 8),
  layerBytes: envInt('COFFER_BENCH_LAYER_MIB', 64) * MiB,
  gzipLevel: 1,
}
const RUNS = envInt('COFFER_BENCH_RUNS', 3)
/** The parts of the bench, in the order they run; COFFER_BENCH_ONLY=crypt,fs runs a subset. */
const SECTIONS = ['copy', 'crypt', 'pull', 'kbs', 'fs'] as const
type Section = (typeof SECTIONS)[number]
const ONLY = sectionsToRun(process.env.COFFER_BENCH_ONLY)
/** Where registry storage and pulled layouts go (a disk by default; /dev/shm takes the disk out). */
const WORK_PARENT = process.env.COFFER_BENCH_TMPDIR || tmpdir()

/**
 * The share of the image a run must have moved through syscalls to count as a real transfer. The
 * counters are polled, so up to 50 ms of traffic is missing (a lot of a small trial image); a run
 * that skipped or mounted the blobs moves next to nothing.
 */
const IO_EVIDENCE = 0.5

type Tool = 'coffer' | 'skopeo'

/** One measured copy: what to run, and how to tell it really moved every blob. */
interface Job {
  tool: Tool
  command: string
  args: string[]
  /** Throws if the run skipped blobs or left the destination incomplete. */
  check(m: Measurement): Promise<void>
  /** Removes what the run made (its registry, a pulled layout). */
  cleanup(): Promise<void>
}

async function main(): Promise<void> {
  const root = repoRoot()
  const cofferBin = join(root, 'dist', 'cli', 'main.js')
  if (!existsSync(cofferBin)) throw new Error(`${cofferBin} is missing: run npm run build first`)
  const machine = describeMachine(root)

  // === 1. the image, generated once
  log(`image: ${shapeName(SHAPE)} in bench/.cache/`)
  const image = await ensureBenchImage(join(root, 'bench', '.cache'), SHAPE)
  log(
    image.generatedSeconds > 0
      ? `image: generated ${mib(image.totalBytes)} in ${image.generatedSeconds.toFixed(1)} s`
      : `image: cached, ${mib(image.totalBytes)}`,
  )

  // From here on something of ours runs: Ctrl-C must stop it, not orphan it.
  const controller = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping`)
    process.exitCode = 130
    controller.abort(new Error(`interrupted by ${signal}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const signal = controller.signal

  const work = await mkdtemp(join(WORK_PARENT, 'coffer-bench-'))
  /** Every registry we started and have not stopped yet; `finally` stops what is left. */
  const registries = new Set<LocalRegistry>()
  const startRegistry = async (name: string): Promise<LocalRegistry> => {
    const dir = join(work, name)
    await mkdir(dir)
    const registry = await startLocalRegistry(dir)
    registries.add(registry)
    return {
      ...registry,
      stop: async () => {
        await registry.stop()
        registries.delete(registry)
        await rm(dir, { recursive: true, force: true })
      },
    }
  }
  try {
    // === 2. the pull source, filled once by an unmeasured push
    let source = ''
    if (ONLY.has('copy')) {
      const registry = await startRegistry('registry-src')
      log(`registry: ${registry.host} (pid ${registry.pid})`)
      source = `docker://${registry.host}/bench-src:1`
      const warm = await measure('skopeo', ['copy', '--dest-tls-verify=false', layoutName(image), source], {
        signal,
      })
      if (warm.exitCode !== 0) throw new Error(`warm-up push failed: ${warm.stderr.trim()}`)
      log(`warm-up push (skopeo, unmeasured): ${warm.seconds.toFixed(2)} s`)
    }

    // === 3. the measured runs
    const runs: { label: string; tool: string; m: Measurement }[] = []
    const rows: Row[] = []
    // The encrypted source for decryption, made once (unmeasured) by skopeo, the reference tool.
    const keys = await benchKeys(work)
    const encrypted = join(work, 'encrypted-src')
    if (ONLY.has('crypt')) {
      const enc = await measure(
        'skopeo',
        ['copy', '--encryption-key', `jwe:${keys.pub}`, layoutName(image), `oci:${encrypted}:bench`],
        { signal },
      )
      if (enc.exitCode !== 0) throw new Error(`preparing the encrypted source failed: ${enc.stderr.trim()}`)
    }

    const directions: {
      section: Section
      label: string
      goals: Goals
      job: (tool: Tool, i: number) => Promise<Job>
    }[] = [
      {
        section: 'copy',
        label: 'copy layout → registry',
        goals: COPY_GOALS,
        job: async (tool, i) =>
          pushJob(tool, image, await startRegistry(`registry-${tool}-${i}`), `${tool}-bench:1`, cofferBin),
      },
      {
        section: 'copy',
        label: 'copy registry → layout',
        goals: COPY_GOALS,
        job: async (tool, i) => pullJob(tool, image, source, join(work, `pull-${tool}-${i}`), cofferBin),
      },
      {
        section: 'crypt',
        label: 'encrypt layout → layout (jwe, EC P-256)',
        goals: CRYPT_GOALS,
        job: async (tool, i) =>
          cryptJob(
            tool,
            image,
            layoutName(image),
            join(work, `enc-${tool}-${i}`),
            ['--encryption-key', `jwe:${keys.pub}`],
            cofferBin,
          ),
      },
      {
        section: 'crypt',
        label: 'decrypt layout → layout',
        goals: CRYPT_GOALS,
        job: async (tool, i) =>
          cryptJob(
            tool,
            image,
            `oci:${encrypted}:bench`,
            join(work, `dec-${tool}-${i}`),
            ['--decryption-key', keys.key],
            cofferBin,
          ),
      },
    ]
    for (const { label, goals, job } of directions.filter((d) => ONLY.has(d.section))) {
      const row: Row = { label, goals, coffer: [], skopeo: [] }
      for (let i = 0; i < RUNS; i++) {
        const order: Tool[] = i % 2 === 0 ? ['coffer', 'skopeo'] : ['skopeo', 'coffer']
        for (const tool of order) {
          const j = await job(tool, i)
          let m: Measurement
          try {
            settle()
            m = await measure(j.command, j.args, { signal })
            if (m.exitCode !== 0)
              throw new Error(
                `${tool} ${label} failed (exit ${m.exitCode}): ${(m.stderr || m.stdout).trim()}`,
              )
            await j.check(m)
          } finally {
            await j.cleanup()
          }
          row[tool].push(m)
          runs.push({ label, tool, m })
          log(
            `${label} ${tool} #${i + 1}: ${m.seconds.toFixed(2)} s, peak RSS ${mib(m.peakRssKiB * 1024)}` +
              ` (polled ${mib(m.polledRssKiB * 1024)}${m.timeRssKiB ? `, GNU time ${mib(m.timeRssKiB * 1024)}` : ''})`,
          )
        }
      }
      rows.push(row)
    }

    const summary: SummaryRow[] = rows.map((row) =>
      copyRow(row, image.totalBytes, machineValue(machine, 'skopeo').replace('skopeo version', 'skopeo')),
    )
    const sections: string[] = []
    if (rows.length > 0) sections.push(copySection(image, resultsTable(rows, image)))

    // === 4. the guest's pull, the key broker, the encrypted filesystem (each its own module)
    if (ONLY.has('pull')) {
      signal.throwIfAborted()
      log('pull + decrypt + unpack: coffer pull vs skopeo copy + umoci unpack')
      const r = await benchPull(cofferBin, root)
      summary.push(pullRow(r))
      sections.push(`## Pull + decrypt + unpack (the guest)\n\n${PULL_METHOD}\n\n${pullTable(r)}`)
    }
    if (ONLY.has('kbs')) {
      signal.throwIfAborted()
      log('KBS: resource GETs and sample handshakes under load')
      const r = await benchKbs(cofferBin)
      summary.push(...kbsRows(r))
      sections.push(`## Key broker\n\n${KBS_METHOD}\n\n${kbsTable(r)}`)
    }
    if (ONLY.has('fs')) {
      signal.throwIfAborted()
      log('encrypted filesystem: fio and tar -x on plain, gocryptfs and coffer')
      const r = await benchFs(cofferBin)
      summary.push(...fsRows(r))
      sections.push(`## Encrypted filesystem (FUSE)\n\n${FS_METHOD}\n\n${fsTable(r)}`)
    }

    // === 5. the report
    const table = summaryTable(summary)
    process.stdout.write(`\n${table}\n\n`)
    const path = join(root, 'bench', 'RESULTS.md')
    await writeFile(path, report(machine, table, sections, runs.length > 0 ? runsTable(runs) : undefined))
    log(`wrote ${path}`)
  } finally {
    for (const registry of registries) await registry.stop()
    await rm(work, { recursive: true, force: true })
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** `oci:DIR:bench` → `docker://HOST/<repoTag>` on `registry`, which the job owns and stops. */
function pushJob(
  tool: Tool,
  image: BenchImage,
  registry: LocalRegistry,
  repoTag: string,
  cofferBin: string,
): Job {
  const { host } = registry
  const dest = `docker://${host}/${repoTag}`
  const src = layoutName(image)
  const [command, args] =
    tool === 'coffer'
      ? [process.execPath, [cofferBin, 'copy', '--json', '--dest-tls-verify=false', src, dest]]
      : ['skopeo', ['copy', '--dest-tls-verify=false', src, dest]]
  return {
    tool,
    command,
    args,
    async check(m) {
      checkAllBlobsMoved(tool, m, image)
      if (m.ioBytes.written < IO_EVIDENCE * image.totalBytes)
        throw new Error(
          `${tool} push wrote only ${m.ioBytes.written} bytes, the image has ${image.totalBytes}`,
        )
      // The tag must name the image just pushed (both tools copy the manifest byte for byte).
      const [repo, tag] = repoTag.split(':') as [string, string]
      const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
      const digest = res.headers.get('docker-content-digest')
      if (res.status !== 200 || digest !== image.manifestDigest)
        throw new Error(`${tool} push: ${dest} answers ${res.status} ${digest}, want ${image.manifestDigest}`)
    },
    cleanup: () => registry.stop(),
  }
}

/** `docker://HOST/bench-src:1` → `oci:<fresh dir>:x`. */
function pullJob(tool: Tool, image: BenchImage, src: string, dir: string, cofferBin: string): Job {
  const dest = `oci:${dir}:x`
  const [command, args] =
    tool === 'coffer'
      ? [process.execPath, [cofferBin, 'copy', '--json', '--src-tls-verify=false', src, dest]]
      : ['skopeo', ['copy', '--src-tls-verify=false', src, dest]]
  return {
    tool,
    command,
    args,
    async check(m) {
      checkAllBlobsMoved(tool, m, image)
      if (m.ioBytes.read < IO_EVIDENCE * image.totalBytes)
        throw new Error(`${tool} pull read only ${m.ioBytes.read} bytes, the image has ${image.totalBytes}`)
      const onDisk = await blobBytes(dir)
      if (onDisk < image.totalBytes)
        throw new Error(`${tool} pull: ${dir} holds ${onDisk} blob bytes, want at least ${image.totalBytes}`)
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

/**
 * `oci:SRC` → `oci:NEWDIR:x` with encryption or decryption flags: coffer's `encrypt`/`decrypt`
 * (its `copy` takes the same flags) vs `skopeo copy`. Checked by the blob bytes on disk.
 */
function cryptJob(
  tool: Tool,
  image: BenchImage,
  src: string,
  dir: string,
  flags: string[],
  cofferBin: string,
): Job {
  const dest = `oci:${dir}:x`
  const [command, args] =
    tool === 'coffer'
      ? [process.execPath, [cofferBin, 'copy', '--json', ...flags, src, dest]]
      : ['skopeo', ['copy', ...flags, src, dest]]
  return {
    tool,
    command,
    args,
    async check() {
      const onDisk = await blobBytes(dir)
      if (onDisk < image.totalBytes)
        throw new Error(`${tool}: ${dir} holds ${onDisk} blob bytes, want at least ${image.totalBytes}`)
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

/** An EC P-256 key pair for the encryption rows, in the bench's work directory. */
async function benchKeys(work: string): Promise<{ key: string; pub: string }> {
  const pair = await generateKeyPair('ec', { curve: 'P-256' })
  const key = join(work, 'bench.key')
  const pub = join(work, 'bench.pub')
  await writeFile(key, pair.privatePem, { mode: 0o600 })
  await writeFile(pub, pair.publicPem)
  return { key, pub }
}

/** What each tool says it did: every blob transferred, none skipped. */
function checkAllBlobsMoved(tool: Tool, m: Measurement, image: BenchImage): void {
  if (tool === 'coffer') {
    const line = m.stdout.trim().split('\n').at(-1) ?? ''
    const result = (JSON.parse(line) as { result?: { blobsCopied?: number; blobsSkipped?: number } }).result
    if (result?.blobsCopied !== image.blobs || result.blobsSkipped !== 0)
      throw new Error(
        `coffer copied ${result?.blobsCopied} blobs (skipped ${result?.blobsSkipped}), want ${image.blobs}`,
      )
    return
  }
  // skopeo (containers/image copy) prints one "Copying blob <digest>" per layer and one "Copying
  // config <digest>". Without a TTY it does not say when it reused or mounted a blob instead (that is
  // only in --debug): the /proc/<pid>/io byte counts are the check for that.
  const out = `${m.stdout}\n${m.stderr}`
  const blobs = out.match(/^Copying blob sha256:[0-9a-f]+.*$/gm) ?? []
  const skipped = blobs.filter((l) => /skipped/.test(l))
  if (blobs.length !== image.shape.layers || skipped.length > 0 || !/^Copying config /m.test(out))
    throw new Error(`skopeo moved ${blobs.length - skipped.length} of ${image.shape.layers} layers:\n${out}`)
}

async function blobBytes(layout: string): Promise<number> {
  const dir = join(layout, 'blobs', 'sha256')
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

function report(
  machineLines: [string, string][],
  summary: string,
  sections: string[],
  runs: string | undefined,
): string {
  const machine = machineLines.map(([k, v]) => `- ${k}: ${v}`).join('\n')
  const partial =
    ONLY.size < SECTIONS.length
      ? `\n**Partial run**: only ${[...ONLY].join(', ')} (COFFER_BENCH_ONLY).\n`
      : ''
  return `# coffer vs the peer tools

Written by \`npm run bench\` (bench/run.ts). Do not edit by hand; the analysis is in \`bench/NOTES.md\`.
${partial}
## Machine

${machine}

## Summary

Every row is coffer against the real peer tool, measured on this machine in the same run.
"coffer vs peer" is a speed factor, higher is better: the peer's time over coffer's for timed
jobs, coffer's rate over the peer's for rates. Peak RSS is the process tree's (for FUSE and the
KBS, the serving process's).

${summary}

${sections.join('\n\n')}
${runs === undefined ? '' : `\n## All copy, encrypt and decrypt runs\n\n${runs}\n`}`
}

/** The copy / encrypt / decrypt section: the image, how each job ran, and the per-row table. */
function copySection(image: BenchImage, table: string): string {
  const { layers, layerBytes, gzipLevel } = image.shape
  return `## Copy, encrypt, decrypt (coffer vs skopeo)

### Image

- ${layers} layers of ${mib(layerBytes)} each: one file of AES-128-CTR keystream (incompressible) in a
  tar, gzip level ${gzipLevel}, media type \`application/vnd.oci.image.layer.v1.tar+gzip\`
- ${image.blobs} blobs (config + layers), ${image.totalBytes} bytes (${mib(image.totalBytes)}) in total
- manifest \`${image.manifestDigest}\`

### Method

- Registry: Debian \`docker-registry\` (distribution 2.8) on 127.0.0.1, filesystem storage under
  \`${WORK_PARENT}\` (as pulled layouts), no TLS, no auth.
- layout → registry: \`coffer copy --dest-tls-verify=false oci:DIR:bench docker://HOST/coffer-bench:1\`
  vs \`skopeo copy --dest-tls-verify=false …\`, each run into a registry of its own, started empty for it.
  (With one registry and a new repository per run, skopeo uploads nothing after the first push: its
  blob-info cache in /var/lib/containers/cache knows the blobs are in another repository of that
  registry, and it mounts them.) Every blob is uploaded in full, checked by coffer's \`blobsCopied\`
  and by the bytes each process wrote through syscalls (\`/proc/<pid>/io\` wchar ≥ half the image, as last polled).
- registry → layout (the source is one more registry, filled by an unmeasured skopeo push):
  \`coffer copy --src-tls-verify=false docker://HOST/bench-src:1 oci:NEWDIR:x\` vs
  \`skopeo copy --src-tls-verify=false …\`, a new empty directory per run, deleted after the run;
  checked by \`blobsCopied\`, rchar ≥ half the image and the blob bytes on disk.
- encrypt / decrypt layout → layout: \`coffer copy --encryption-key jwe:KEY.pub\` (or
  \`--decryption-key KEY\`) vs \`skopeo copy\` with the same flags, a new directory per run; the
  decryption source is the image encrypted once by skopeo (unmeasured). Checked by the blob bytes on disk.
- Both tools at their defaults (6 blobs at a time). ${RUNS} runs per tool and job, alternating
  which tool goes first; \`sync\` before each run.
- Time: wall clock from spawn to exit, median of the runs. Peak RSS: the largest of the runs, each the
  maximum of (a) the process tree's summed \`VmHWM\` polled from /proc every 50 ms and (b) GNU time's \`%M\`.
- Goals: copies ≤ ${COPY_GOALS.maxTimeRatio}× skopeo's time and ≤ ${COPY_GOALS.maxRssMiB} MiB (issue 3);
  encryption and decryption ≤ ${CRYPT_GOALS.maxTimeRatio}× skopeo's time (5× faster) and ≤ ${CRYPT_GOALS.maxRssMiB} MiB (issue 4).

### Results

${table}`
}

const PULL_METHOD = `The same image, encrypted once by skopeo for an EC P-256 jwe key and pushed to a loopback
registry. \`coffer pull --decryption-key KEY … --rootfs DIR\` (fetch, decrypt, verify the HMAC, digests
and diff_ids, unpack into its layer store and a rootfs) against \`skopeo copy --decryption-key\` into an
OCI layout followed by \`umoci unpack\`, one run each. Goal (issue 7): ≤ 0.5× the peers' summed time,
peak RSS ≤ 150 MiB. Details: \`bench/pull.ts\`.`

const KBS_METHOD = `\`coffer kbs serve\` (memory store, sample attester) in its own process on loopback; the load
generator runs here with keep-alive connections, each virtual guest holding its own token. No peer:
trustee's KBS is not packaged for Debian and cannot be fetched here (only the npm and Debian
registries are reachable). Goal (issue 6): ≥ 1,000 GETs/s with p99 < 20 ms, ≥ 200 handshakes/s.
Details: \`bench/kbs-load.ts\`.`

const FS_METHOD = `fio (psync, one job) sequential 1 MiB write and read of 256 MiB, random 4 KiB write and
read of 64 MiB for 4 s, and \`tar -x\` of a 20,000-file tree, on a plain directory, a Debian
gocryptfs mount (\`-fg\`) and a \`coffer mount --volume\`, each FUSE server in its own process. Each
fio job runs in 3 rounds that take the three targets in turn (the order rotating each round); the
table shows each target's median. Page caches are dropped before each read job where the kernel
allows it. Goal (issue 8): ≥ 1.0× gocryptfs's sequential throughput, ≥ 0.7× its random 4 KiB IOPS.
Details: \`bench/fs.ts\`.`

function sectionsToRun(value: string | undefined): Set<Section> {
  if (value === undefined || value.trim() === '') return new Set(SECTIONS)
  const picked = value.split(',').map((v) => v.trim())
  for (const p of picked)
    if (!(SECTIONS as readonly string[]).includes(p))
      throw new Error(`COFFER_BENCH_ONLY: unknown part "${p}" (parts: ${SECTIONS.join(', ')})`)
  return new Set(picked as Section[])
}

function machineValue(lines: [string, string][], key: string): string {
  return lines.find(([k]) => k === key)?.[1] ?? key
}

/** Flushes dirty pages so one run's writeback does not land in the next run's time. */
function settle(): void {
  execFileSync('sync')
}

function layoutName(image: BenchImage): string {
  return `oci:${image.dir}:${image.tag}`
}

/** The directory with coffer's package.json, found upward from this file (src or dist). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bench'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the coffer repository root')
    dir = up
  }
  return dir
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${v}"`)
  return n
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`)
}

main().catch((err: unknown) => {
  if (process.exitCode === 130) return log('interrupted; registries stopped, temp dirs removed')
  log(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exitCode = 1
})
