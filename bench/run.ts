/**
 * `npm run bench`: coffer against skopeo, copying a 512 MiB image between an OCI layout and a
 * local registry (Debian `docker-registry`, distribution 2.8) on loopback, in both directions.
 *
 * Steps:
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
/** COFFER_BENCH_ONLY=encrypt,decrypt runs only the rows whose label starts with one of the words. */
const ONLY = process.env.COFFER_BENCH_ONLY?.split(',').filter(Boolean)
const wantRow = (label: string): boolean => !ONLY || ONLY.some((w) => label.startsWith(w))
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
    const registry = await startRegistry('registry-src')
    const host = registry.host
    log(`registry: ${host} (pid ${registry.pid})`)
    const source = `docker://${host}/bench-src:1`
    const warm = await measure('skopeo', ['copy', '--dest-tls-verify=false', layoutName(image), source], {
      signal,
    })
    if (warm.exitCode !== 0) throw new Error(`warm-up push failed: ${warm.stderr.trim()}`)
    log(`warm-up push (skopeo, unmeasured): ${warm.seconds.toFixed(2)} s`)

    // === 3. the measured runs
    const runs: { label: string; tool: string; m: Measurement }[] = []
    const rows: Row[] = []
    // The encrypted source for decryption, made once (unmeasured) by skopeo, the reference tool.
    const keys = await benchKeys(work)
    const encrypted = join(work, 'encrypted-src')
    const enc = await measure(
      'skopeo',
      ['copy', '--encryption-key', `jwe:${keys.pub}`, layoutName(image), `oci:${encrypted}:bench`],
      { signal },
    )
    if (enc.exitCode !== 0) throw new Error(`preparing the encrypted source failed: ${enc.stderr.trim()}`)

    const directions: { label: string; goals: Goals; job: (tool: Tool, i: number) => Promise<Job> }[] = [
      {
        label: 'copy layout → registry',
        goals: COPY_GOALS,
        job: async (tool, i) =>
          pushJob(tool, image, await startRegistry(`registry-${tool}-${i}`), `${tool}-bench:1`, cofferBin),
      },
      {
        label: 'copy registry → layout',
        goals: COPY_GOALS,
        job: async (tool, i) => pullJob(tool, image, source, join(work, `pull-${tool}-${i}`), cofferBin),
      },
      {
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
    for (const { label, goals, job } of directions.filter((d) => wantRow(d.label))) {
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

    // === 4. the report
    const table = resultsTable(rows, image)
    process.stdout.write(`\n${table}\n\n`)
    const path = join(root, 'bench', 'RESULTS.md')
    await writeFile(path, report(machine, image, table, runsTable(runs)))
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

function report(machineLines: [string, string][], image: BenchImage, table: string, runs: string): string {
  const machine = machineLines.map(([k, v]) => `- ${k}: ${v}`).join('\n')
  const { layers, layerBytes, gzipLevel } = image.shape
  return `# coffer vs skopeo: copy, encrypt, decrypt

Written by \`npm run bench\` (bench/run.ts). Do not edit by hand.

## Machine

${machine}

## Image

- ${layers} layers of ${mib(layerBytes)} each: one file of AES-128-CTR keystream (incompressible) in a
  tar, gzip level ${gzipLevel}, media type \`application/vnd.oci.image.layer.v1.tar+gzip\`
- ${image.blobs} blobs (config + layers), ${image.totalBytes} bytes (${mib(image.totalBytes)}) in total
- manifest \`${image.manifestDigest}\`

## Method

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
- Both tools at their defaults (6 blobs at a time). ${RUNS} runs per tool and direction, alternating
  which tool goes first; \`sync\` before each run.
- Time: wall clock from spawn to exit, median of the runs. Peak RSS: the largest of the runs, each the
  maximum of (a) the process tree's summed \`VmHWM\` polled from /proc every 50 ms and (b) GNU time's \`%M\`.

- encrypt / decrypt layout → layout: \`coffer copy --encryption-key jwe:KEY.pub\` (or
  \`--decryption-key KEY\`) vs \`skopeo copy\` with the same flags, a new directory per run; the
  decryption source is the image encrypted once by skopeo (unmeasured). Checked by the blob bytes on disk.

## Goals

- copies: coffer's time ≤ ${COPY_GOALS.maxTimeRatio}× skopeo's, peak RSS ≤ ${COPY_GOALS.maxRssMiB} MiB
- encryption and decryption: coffer's time ≤ ${CRYPT_GOALS.maxTimeRatio}× skopeo's (5× faster), peak RSS ≤ ${CRYPT_GOALS.maxRssMiB} MiB

## Results

${table}

## All runs

${runs}
`
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
