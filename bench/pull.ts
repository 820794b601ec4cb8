/**
 * The guest's pull: an encrypted image (jwe, made by skopeo) pulled from a loopback registry,
 * decrypted, verified and unpacked into a rootfs — `coffer pull` against the peers doing the same
 * job, `skopeo copy --decryption-key` then `umoci unpack`, in the same run. Goal (issue 7): coffer
 * ≤ 0.5× the peers' time, peak RSS ≤ 150 MiB.
 *
 * Run alone: `node dist/bench/pull.js` (after `npm run build`); COFFER_BENCH_LAYERS and
 * COFFER_BENCH_LAYER_MIB shrink the image for a quick trial.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalRegistry } from '../cli/demo/local-registry.js'
import { generateKeyPair } from '../lib/crypt/keys.js'
import { MiB } from '../lib/util/limits.js'
import { ensureBenchImage, shapeName } from './image.js'
import { measure, type Measurement } from './measure.js'

export interface PullBenchResult {
  image: string
  coffer: Measurement
  skopeo: Measurement
  umoci: Measurement
}

export const PULL_GOALS = { maxTimeRatio: 0.5, maxRssMiB: 150 }

export async function benchPull(cofferBin: string, root: string): Promise<PullBenchResult> {
  const shape = {
    layers: Number(process.env.COFFER_BENCH_LAYERS ?? 8),
    layerBytes: Number(process.env.COFFER_BENCH_LAYER_MIB ?? 64) * MiB,
    gzipLevel: 1,
  }
  const image = await ensureBenchImage(join(root, 'bench', '.cache'), shape)
  const work = await mkdtemp(join(process.env.COFFER_BENCH_TMPDIR || tmpdir(), 'coffer-bench-pull-'))
  await mkdir(join(work, 'registry'))
  const registry = await startLocalRegistry(join(work, 'registry'))
  try {
    const pair = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(join(work, 'k.key'), pair.privatePem, { mode: 0o600 })
    await writeFile(join(work, 'k.pub'), pair.publicPem)
    const ref = `docker://${registry.host}/bench/pull:enc`
    execFileSync(
      'skopeo',
      [
        'copy',
        '-q',
        '--dest-tls-verify=false',
        '--encryption-key',
        `jwe:${join(work, 'k.pub')}`,
        `oci:${image.dir}:${image.tag}`,
        ref,
      ],
      { stdio: 'inherit' },
    )

    const coffer = await measure(
      process.execPath,
      cofferPullArgv(cofferBin, {
        key: join(work, 'k.key'),
        store: join(work, 'store'),
        rootfs: join(work, 'coffer-rootfs'),
        ref,
      }),
    )
    if (coffer.exitCode !== 0) throw new Error(`coffer pull failed: ${coffer.stderr}`)
    const skopeo = await measure('skopeo', [
      'copy',
      '-q',
      '--src-tls-verify=false',
      '--decryption-key',
      join(work, 'k.key'),
      ref,
      `oci:${join(work, 'layout')}:x`,
    ])
    if (skopeo.exitCode !== 0) throw new Error(`skopeo copy failed: ${skopeo.stderr}`)
    const umoci = await measure('umoci', [
      'unpack',
      ...(process.getuid?.() === 0 ? [] : ['--rootless']),
      '--image',
      `${join(work, 'layout')}:x`,
      join(work, 'bundle'),
    ])
    if (umoci.exitCode !== 0) throw new Error(`umoci unpack failed: ${umoci.stderr}`)
    return { image: shapeName(shape), coffer, skopeo, umoci }
  } finally {
    await registry.stop()
    await rm(work, { recursive: true, force: true })
  }
}

/**
 * `node` arguments for the measured pull: a local key, no policy, a materialized rootfs (as umoci
 * unpack makes), quiet. Shared with the memory test, which pulls the same way.
 */
export function cofferPullArgv(
  cofferBin: string,
  o: { key: string; store: string; rootfs: string; ref: string },
): string[] {
  return [
    cofferBin,
    'pull',
    '-q',
    '--tls-verify=false',
    '--insecure-policy',
    '--decryption-key',
    o.key,
    '--store',
    o.store,
    '--rootfs',
    o.rootfs,
    '--rootfs-mode',
    'materialize',
    o.ref,
  ]
}

export function pullTable(r: PullBenchResult): string {
  const peers = r.skopeo.seconds + r.umoci.seconds
  const peersRss = Math.max(r.skopeo.peakRssKiB, r.umoci.peakRssKiB) / 1024
  const rss = r.coffer.peakRssKiB / 1024
  const ratio = r.coffer.seconds / peers
  const ok = (b: boolean): string => (b ? '✅' : '❌')
  return [
    `| Pull + decrypt + unpack (${r.image}, jwe) | coffer pull | skopeo copy --decryption-key + umoci unpack | coffer/peers | goal |`,
    '| --- | ---: | ---: | ---: | :---: |',
    `| time | ${r.coffer.seconds.toFixed(2)} s | ${r.skopeo.seconds.toFixed(2)} s + ${r.umoci.seconds.toFixed(2)} s = ${peers.toFixed(2)} s | ${ratio.toFixed(2)} | ≤ ${PULL_GOALS.maxTimeRatio}× ${ok(ratio <= PULL_GOALS.maxTimeRatio)} |`,
    `| peak RSS | ${rss.toFixed(0)} MiB | ${peersRss.toFixed(0)} MiB | ${(rss / peersRss).toFixed(2)} | ≤ ${PULL_GOALS.maxRssMiB} MiB ${ok(rss <= PULL_GOALS.maxRssMiB)} |`,
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = fileURLToPath(new URL('.', import.meta.url))
  benchPull(join(here, '..', 'cli', 'main.js'), join(here, '..', '..'))
    .then((r) => console.log(pullTable(r)))
    .catch((err: unknown) => {
      console.error(err)
      process.exitCode = 1
    })
}
