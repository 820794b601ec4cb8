/**
 * The real Debian `gocryptfs` (2.3) for interop tests: init, mount as its own process (it
 * daemonises once the mount is ready), unmount with `fusermount -u`, fsck, info, and the master key
 * through `gocryptfs-xray`. A missing tool fails the test (no skipping).
 */
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
const TIMEOUT_MS = 60_000

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command; a non-zero exit is returned, not thrown (tests assert on it). */
export async function runTool(cmd: string, args: string[], input?: string): Promise<RunResult> {
  if (input !== undefined) {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
      child.stdin.end(input)
    })
  }
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: TIMEOUT_MS })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof e.code !== 'number') throw err // ENOENT: the tool is missing, which must fail the test
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

async function mustRun(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await runTool(cmd, args, input)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`)
  return r
}

/** `gocryptfs -init` with a cheap scrypt (N=2^10) unless `extra` says otherwise. */
export async function gocryptfsInit(
  cipherDir: string,
  passfile: string,
  extra: string[] = [],
): Promise<void> {
  await mustRun('gocryptfs', ['-init', '-q', '-scryptn', '10', '-passfile', passfile, ...extra, cipherDir])
}

/** A gocryptfs mount; `unmount` is idempotent and must run in finally/afterAll. */
export interface GocryptfsMount {
  readonly dir: string
  unmount(): Promise<void>
}

export async function mountGocryptfs(
  cipherDir: string,
  mountDir: string,
  passfile: string,
): Promise<GocryptfsMount> {
  await mustRun('gocryptfs', ['-q', '-passfile', passfile, cipherDir, mountDir])
  let mounted = true
  return {
    dir: mountDir,
    async unmount() {
      if (!mounted) return
      // A just-closed file can keep the mount busy for a moment.
      for (let attempt = 0; ; attempt++) {
        const r = await runTool('fusermount', ['-u', mountDir])
        if (r.code === 0 || /not found in|not mounted/i.test(r.stderr)) break
        if (attempt >= 20) throw new Error(`fusermount -u ${mountDir}: ${r.stderr.trim()}`)
        await new Promise((res) => setTimeout(res, 100))
      }
      mounted = false
    },
  }
}

/** `gocryptfs -fsck`: exit 0 and "no problems found" for a sound volume. */
export function gocryptfsFsck(cipherDir: string, passfile: string): Promise<RunResult> {
  return runTool('gocryptfs', ['-fsck', '-passfile', passfile, cipherDir])
}

/** The hex master key, as `gocryptfs-xray -dumpmasterkey` prints it (passphrase on stdin). */
export async function dumpMasterKey(confPath: string, passphrase: string): Promise<string> {
  const r = await mustRun('gocryptfs-xray', ['-dumpmasterkey', confPath], `${passphrase}\n`)
  return r.stdout.trim()
}
