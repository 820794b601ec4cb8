/**
 * A software TPM for the demo and the tests: `swtpm socket` on two free 127.0.0.1 ports, state in
 * a fresh private directory, TPM2_Startup done by swtpm itself (`--flags startup-clear`). Tools
 * reach it with the TCTI `swtpm:host=127.0.0.1,port=N`. Always `stop()` it: that ends only this
 * swtpm, by pid, and removes its state. A missing swtpm makes `startSwtpm` reject (ERR_NOT_FOUND),
 * so a test fails rather than skips.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CofferError } from '../../lib/util/errors.js'

export interface Swtpm {
  /** TCTI for tpm2-tools' `-T` and coffer's `tcti` settings. */
  readonly tcti: string
  readonly port: number
  readonly stateDir: string
  readonly pid: number
  stop(): Promise<void>
}

export interface SwtpmOptions {
  /** Where the state directory is created (default: the temp dir). */
  parentDir?: string
}

const HOST = '127.0.0.1'
const READY_TIMEOUT_MS = 10_000
const MAX_STDERR = 16 * 1024

export async function startSwtpm(o: SwtpmOptions = {}): Promise<Swtpm> {
  let lastError: unknown
  // Another process can take a port between the probe and swtpm's bind; try a few pairs.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePortPair()
    const stateDir = await mkdtemp(join(o.parentDir ?? tmpdir(), 'coffer-swtpm-'))
    try {
      return await launch(port, stateDir)
    } catch (err) {
      lastError = err
      await rm(stateDir, { recursive: true, force: true })
      if (err instanceof CofferError && err.code === 'ERR_NOT_FOUND') break
    }
  }
  throw lastError
}

async function launch(port: number, stateDir: string): Promise<Swtpm> {
  const child = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=${HOST}`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=${HOST}`,
      '--flags',
      'startup-clear',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < MAX_STDERR) stderr += c.toString('utf8')
  })
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new CofferError('ERR_NOT_FOUND', 'swtpm is not installed (Debian package swtpm)')
          : new CofferError('ERR_ATTEST_DEVICE_FAILED', `cannot start swtpm: ${err.message}`),
      ),
    )
    child.once('exit', (code, sig) =>
      reject(
        new CofferError('ERR_ATTEST_DEVICE_FAILED', `swtpm exited early (${code ?? sig}): ${stderr.trim()}`),
      ),
    )
  })
  exited.catch(() => {})
  try {
    await Promise.race([waitForPort(port), exited])
  } catch (err) {
    await killAndWait(child)
    throw err
  }
  let stopped = false
  return {
    tcti: `swtpm:host=${HOST},port=${port}`,
    port,
    stateDir,
    pid: child.pid!,
    async stop() {
      if (stopped) return
      stopped = true
      await killAndWait(child)
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}

/** SIGTERM this child, SIGKILL after 5 s, and resolve once it has exited. */
function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
    return Promise.resolve()
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.once('exit', () => {
      clearTimeout(hard)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: HOST, port }, () => {
        s.end()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline)
      throw new CofferError(
        'ERR_ATTEST_DEVICE_FAILED',
        `swtpm did not listen on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms`,
      )
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A port N such that N and N+1 were both free on 127.0.0.1 a moment ago. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await listenOnce(0)
    if (
      port < 65535 &&
      (await listenOnce(port + 1).then(
        () => true,
        () => false,
      ))
    )
      return port
  }
  throw new CofferError('ERR_INTERNAL', 'no free pair of TCP ports on 127.0.0.1')
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(port, HOST, () => {
      const p = (srv.address() as { port: number }).port
      srv.close(() => resolve(p))
    })
  })
}
