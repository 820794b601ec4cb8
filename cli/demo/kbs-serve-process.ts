/**
 * `coffer kbs serve` as a child process (memory store, sample TEE allowed, a policy installed),
 * resolved once it prints `{"listening": URL}`. The benchmark and the tests that exercise the
 * real binary use it; `coffer demo` runs its KBS in process instead (local-kbs.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface KbsServeProcess {
  readonly child: ChildProcess
  readonly url: string
  /** SIGTERM, and wait for the exit; resolves with its exit code (null if it was already gone). */
  stop(): Promise<number | null>
}

export async function startKbsServeProcess(o: {
  cofferBin: string
  /** PEM public key allowed to call the admin API. */
  adminPublicKey: string
  /** Resource policy file installed at start. */
  policyFile: string
  /** Warnings and errors only: the server warns on every sample attestation. */
  quiet?: boolean
}): Promise<KbsServeProcess> {
  const child = spawn(
    process.execPath,
    [
      o.cofferBin,
      'kbs',
      'serve',
      '--port',
      '0',
      '--store',
      'memory',
      '--allow-sample',
      '--admin-key',
      o.adminPublicKey,
      '--policy',
      o.policyFile,
      '--json',
      ...(o.quiet ? ['-q'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    return exited
  }
  try {
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`coffer kbs serve exited with ${code}`)))
    })
    return { child, url: (JSON.parse(first) as { listening: string }).listening, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
