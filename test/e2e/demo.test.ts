/**
 * `coffer demo` (README quick start, line one) end to end from the built binary:
 *  - the guest's rootfs equals `umoci unpack` of the sample image the demo built, and the encrypted
 *    image is ocicrypt's format (skopeo decrypts it);
 *  - the file written to the encrypted volume read back as written, and the backing held only
 *    gocryptfs ciphertext under an encrypted name;
 *  - with swtpm installed the guest attested with the TPM (the KBS affirmed its AK and PCR 11); with
 *    --attester sample it says so and warns;
 *  - afterwards, and after a SIGINT at an early and at a late step, no process the demo started
 *    is left (by pid and by process group), nothing is mounted, and the work directory is gone
 *    unless it was to be kept.
 */
import { execFile, spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TEST_HOLD_AFTER_ENV } from '../../cli/demo/step-runner.js'
import { cipherSize } from '../../cli/demo/volume-proof.js'
import { COFFER_BIN, coffer } from '../helpers/coffer.js'
import { snapshotTree } from '../helpers/layer-image.js'
import { skopeo } from '../helpers/skopeo.js'

const execFileP = promisify(execFile)

const STEPS_BUILDER = ['build', 'registry', 'copy', 'keys', 'kbs', 'kbs-resources', 'encrypt', 'sign']
const STEPS_GUEST = [
  'attester',
  'kbs-trust',
  'attest',
  'pull',
  'volume-mount',
  'volume-write',
  'volume-unmount',
]

interface DemoResult {
  digest: string
  encrypted: string
  layers: string[]
  registry: string
  kbs: string
  attester: { name: string; reason: string }
  rootfs: { path: string; entries: { path: string }[] }
  volume: {
    file: string
    plaintext: string
    readBack: string
    backingNames: string[]
    encryptedName: string
    ciphertext: string
    mountpoint: string
    backing: string
  }
  processes: { name: string; pid: number }[]
  workdir: string
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean))
    if (
      await access(join(dir, name), constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return true
  return false
}

/** Pids of live processes whose process group is `pgid` (zombies count: they were not reaped). */
async function processGroupMembers(pgid: number): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid) out.push(Number(name))
  }
  return out
}

const alive = (pid: number): Promise<boolean> =>
  stat(`/proc/${pid}`).then(
    () => true,
    () => false,
  )
const mountsUnder = async (dir: string): Promise<string[]> =>
  (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(dir))

/** Nothing the demo started is running or mounted. */
async function expectNothingLeft(demoPid: number, pids: number[], workdir: string): Promise<void> {
  for (const pid of pids) expect(await alive(pid), `pid ${pid}`).toBe(false)
  expect(await processGroupMembers(demoPid)).toEqual([])
  expect(await mountsUnder(workdir)).toEqual([])
}

interface LiveDemo {
  pid: number
  lines: Record<string, unknown>[]
  /** Resolves with the first line for which `match` is true. */
  waitFor(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>
}

/** `coffer demo --json …` in its own process group (its children join it), read line by line. */
function startDemo(args: string[], env: NodeJS.ProcessEnv = {}): LiveDemo {
  const child = spawn(process.execPath, [COFFER_BIN, 'demo', '--json', ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  const lines: Record<string, unknown>[] = []
  const waiters: {
    match: (l: Record<string, unknown>) => boolean
    resolve: (l: Record<string, unknown>) => void
  }[] = []
  let pending = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk
    let nl: number
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>
      pending = pending.slice(nl + 1)
      lines.push(line)
      for (const w of waiters.splice(0)) {
        if (w.match(line)) w.resolve(line)
        else waiters.push(w)
      }
    }
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })),
  )
  return {
    pid: child.pid!,
    lines,
    exit,
    waitFor: (match) =>
      new Promise((resolve, reject) => {
        const found = lines.find(match)
        if (found) return resolve(found)
        waiters.push({ match, resolve })
        void exit.then((e) => reject(new Error(`demo exited (${e.code ?? e.signal}) first: ${e.stderr}`)))
      }),
  }
}

const started = (lines: Record<string, unknown>[]): number[] =>
  lines.filter((l) => 'process' in l).map((l) => (l.process as { pid: number }).pid)
const startOf = (lines: Record<string, unknown>[]): { workdir: string; pid: number } =>
  lines.find((l) => 'start' in l)!.start as { workdir: string; pid: number }

describe('coffer demo', () => {
  let work: string
  let tpmExpected: boolean
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-demo-test-'))
    tpmExpected = (await onPath('swtpm')) && (await onPath('tpm2_quote'))
  })
  afterAll(async () => {
    await rm(work, { recursive: true, force: true })
  })

  it('runs end to end: the guest rootfs is the sample image, the volume held only ciphertext, nothing is left running or mounted', async () => {
    const demo = startDemo(['--keep'])
    const { code, stderr } = await demo.exit
    expect(code, stderr).toBe(0)
    expect(stderr).toBe('')
    const lines = demo.lines
    const { workdir } = startOf(lines)
    try {
      const steps = lines.filter((l) => 'step' in l)
      expect(steps.map((l) => l.step)).toEqual([...STEPS_BUILDER, ...STEPS_GUEST, 'cleanup'])
      for (const s of steps) {
        expect(s.ok).toBe(true)
        expect(typeof s.ms).toBe('number')
      }
      const summary = lines.find((l) => 'summary' in l)!.summary as { outcome: string; totalMs: number }
      expect(summary.outcome).toBe('ok')
      const result = lines.find((l) => 'result' in l)!.result as DemoResult
      expect(result.workdir).toBe(workdir)

      // The attester it said it used: the TPM when swtpm is installed, and the KBS affirmed it.
      expect(result.attester.name).toBe(tpmExpected ? 'tpm' : 'sample')
      const attest = steps.find((l) => l.step === 'attest')!.detail as string[]
      if (tpmExpected) expect(attest[0]).toContain('status affirming (hardware 2, executables 3)')

      // The guest's rootfs is what umoci unpacks from the image the demo built.
      await execFileP(
        'umoci',
        ['unpack', '--image', `${join(workdir, 'build')}:sample`, join(work, 'umoci')],
        {
          timeout: 120_000,
        },
      )
      const tree = async (root: string) => {
        const t = await snapshotTree(root, { mtimes: ['file', 'symlink'] })
        for (const n of Object.values(t)) if (n.type === 'dir') delete n.mtime
        return t
      }
      expect(result.rootfs.path).toBe(join(workdir, 'guest', 'bundle', 'rootfs'))
      expect(await tree(result.rootfs.path)).toEqual(await tree(join(work, 'umoci', 'rootfs')))
      expect(Object.keys(await tree(result.rootfs.path))).toContain('app/message.txt')

      // The encrypted image is ocicrypt's: skopeo decrypts it to the original layers.
      await skopeo([
        'copy',
        '--decryption-key',
        join(workdir, 'keys', 'demo.key'),
        `oci:${join(workdir, 'encrypted')}:sample`,
        `oci:${join(work, 'sk-dec')}:x`,
      ])
      const skm = JSON.parse(
        (await skopeo(['inspect', '--raw', `oci:${join(work, 'sk-dec')}:x`])).stdout,
      ) as {
        layers: { digest: string }[]
      }
      expect(skm.layers.map((l) => l.digest)).toEqual(result.layers)
      expect(result.encrypted).not.toBe(result.digest)

      // The volume: read back as written; the backing held a diriv and one encrypted name, whose
      // content was gocryptfs v2 ciphertext (version 2 header, 32 bytes per block) of that size.
      const v = result.volume
      expect(v.readBack).toBe(v.plaintext)
      expect(v.plaintext).toMatch(/^Written inside the TEE/)
      expect(v.backingNames.sort()).toEqual(['gocryptfs.diriv', v.encryptedName].sort())
      expect(v.encryptedName).not.toContain(v.file.split('.')[0])
      const ciphertext = Buffer.from(v.ciphertext, 'base64')
      expect(ciphertext.length).toBe(cipherSize(Buffer.byteLength(v.plaintext)))
      expect(ciphertext.readUInt16BE(0)).toBe(2)
      expect(ciphertext.includes(Buffer.from(v.plaintext))).toBe(false)
      expect(ciphertext.includes(Buffer.from('TEE'))).toBe(false)
      // Unmounting an ephemeral volume removes its ciphertext (the key is gone anyway).
      await expect(stat(v.backing)).rejects.toThrow()

      // Nothing left: the processes it reported, its process group, its mounts; the servers' ports.
      expect(result.processes.map((p) => p.name)).toEqual(
        tpmExpected ? ['registry', 'swtpm', 'mount server'] : ['registry', 'mount server'],
      )
      await expectNothingLeft(demo.pid, started(lines), workdir)
      await expect(fetch(`http://${result.registry}/v2/`)).rejects.toThrow()
      await expect(fetch(`${result.kbs}/healthz`)).rejects.toThrow()
      expect(await readdir(join(workdir, 'guest', 'mount-state'))).toEqual([])
    } finally {
      await rm(workdir, { recursive: true, force: true })
    }
  }, 180_000)

  it('--attester sample says why and warns; without --keep the work directory goes', async () => {
    const run = await coffer(['demo', '--json', '--attester', 'sample'])
    expect(run.code, run.stderr).toBe(0)
    const lines = run.json()
    const result = lines.find((l) => 'result' in l)!.result as DemoResult
    expect(result.attester).toEqual({ name: 'sample', reason: '--attester sample was given' })
    const detail = (id: string): string[] => lines.find((l) => l.step === id)!.detail as string[]
    expect(detail('attest').join('\n')).toContain('using the "sample" attester')
    expect(detail('kbs').join('\n')).toContain('the sample TEE is accepted')
    expect(detail('kbs-trust')[0]).toBe('allow demo/*/* when tee == "sample"')
    expect(result.rootfs.entries.map((e) => e.path)).toContain('app/message.txt')
    await expect(stat(result.workdir)).rejects.toThrow()
    expect(await mountsUnder(result.workdir)).toEqual([])
    for (const pid of started(lines)) expect(await alive(pid)).toBe(false)
  }, 180_000)

  it('refuses a --workdir that is not empty, before starting anything', async () => {
    const used = join(work, 'used')
    await mkdir(used)
    await writeFile(join(used, 'something'), 'x')
    const run = await coffer(['demo', '--workdir', used])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('is not empty')
    const bad = await coffer(['demo', '--attester', 'snp'])
    expect(bad.code).toBe(2)
  })

  it.each(['registry', 'volume-mount'])(
    'SIGINT after the %s step: exit 130, every process it started stopped, nothing mounted, the work directory gone',
    async (step) => {
      const demo = startDemo([], { [TEST_HOLD_AFTER_ENV]: step })
      await demo.waitFor((l) => l.held === step)
      const { workdir } = startOf(demo.lines)
      const pids = started(demo.lines)
      expect(pids.length).toBeGreaterThan(0)
      for (const pid of pids) expect(await alive(pid)).toBe(true)
      // The group check below is meaningful: the demo's children are in its process group.
      expect(await processGroupMembers(demo.pid)).toEqual(expect.arrayContaining([demo.pid, ...pids]))
      if (step === 'volume-mount') expect(await mountsUnder(workdir)).toHaveLength(1)
      process.kill(demo.pid, 'SIGINT')
      const { code, stderr } = await demo.exit
      expect(code).toBe(130)
      expect(stderr).toContain('ERR_CANCELED')
      const cleanup = demo.lines.find((l) => l.step === 'cleanup')!
      expect(cleanup.ok).toBe(true)
      expect((demo.lines.find((l) => 'summary' in l)!.summary as { outcome: string }).outcome).toBe(
        'interrupted',
      )
      expect(demo.lines.some((l) => 'result' in l)).toBe(false)
      await expectNothingLeft(demo.pid, pids, workdir)
      await expect(stat(workdir)).rejects.toThrow()
    },
    180_000,
  )

  it('a mount server that dies mid-way fails the demo at the next step, and the cleanup still detaches its mount and stops the rest', async () => {
    const demo = startDemo([], { [TEST_HOLD_AFTER_ENV]: 'volume-mount' })
    await demo.waitFor((l) => l.held === 'volume-mount')
    const { workdir } = startOf(demo.lines)
    const pids = started(demo.lines)
    const server = demo.lines.find(
      (l) => (l.process as { name?: string } | undefined)?.name === 'mount server',
    )!
    process.kill((server.process as { pid: number }).pid, 'SIGKILL')
    process.kill(demo.pid, 'SIGUSR2')
    const { code, stderr } = await demo.exit
    expect(code).not.toBe(0)
    expect(stderr).toContain('ERR_STORAGE_MOUNT_FAILED')
    const failed = demo.lines.find((l) => l.step === 'volume-write')!
    expect(failed).toMatchObject({ ok: false, error: { code: 'ERR_STORAGE_MOUNT_FAILED' } })
    expect(demo.lines.find((l) => l.step === 'cleanup')!.ok).toBe(true)
    expect((demo.lines.find((l) => 'summary' in l)!.summary as { outcome: string }).outcome).toBe('failed')
    await expectNothingLeft(demo.pid, pids, workdir)
    await expect(stat(workdir)).rejects.toThrow()
  }, 180_000)
})
