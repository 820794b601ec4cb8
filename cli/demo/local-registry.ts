import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { CofferError } from '../../lib/util/errors.js'

/** How the registry authenticates (distribution 2.8 `auth:` section). */
export type LocalRegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; path: string }
  | { kind: 'token'; realm: string; service: string; issuer: string; rootCertBundle: string }

export interface LocalRegistry {
  /** `127.0.0.1:PORT` */
  readonly host: string
  readonly pid: number
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with its storage under
 * `dir`, and waits until `/v2/` answers. Used by `coffer demo`, the tests and the benchmark.
 * The process is ours: `stop()` ends it by pid and waits for it.
 */
export async function startLocalRegistry(
  dir: string,
  auth: LocalRegistryAuth = { kind: 'none' },
): Promise<LocalRegistry> {
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    ...authSection(auth),
  ].join('\n')
  const configPath = join(dir, 'config.yml')
  await writeFile(configPath, `${config}\n`)

  const child = spawn('docker-registry', ['serve', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve))

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(killer)
    }
  }
  try {
    await waitUntilUp(host, child, spawnFailed, () => stderr)
  } catch (err) {
    await stop()
    throw err
  }
  return { host, pid: child.pid!, stop }
}

function authSection(auth: LocalRegistryAuth): string[] {
  switch (auth.kind) {
    case 'none':
      return []
    case 'htpasswd':
      return ['auth:', '  htpasswd:', '    realm: coffer-test', `    path: ${JSON.stringify(auth.path)}`]
    case 'token':
      return [
        'auth:',
        '  token:',
        `    realm: ${JSON.stringify(auth.realm)}`,
        `    service: ${JSON.stringify(auth.service)}`,
        `    issuer: ${JSON.stringify(auth.issuer)}`,
        `    rootcertbundle: ${JSON.stringify(auth.rootCertBundle)}`,
      ]
  }
}

async function waitUntilUp(
  host: string,
  child: ChildProcess,
  spawnFailed: Promise<Error>,
  stderr: () => string,
): Promise<void> {
  let failure: Error | undefined
  void spawnFailed.then((e) => (failure = e))
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (failure) {
      throw new CofferError(
        'ERR_NOT_FOUND',
        (failure as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'docker-registry is not installed: run scripts/install-system-deps.sh (Debian package docker-registry)'
          : `cannot start docker-registry: ${failure.message}`,
      )
    }
    if (child.exitCode !== null)
      throw new CofferError(
        'ERR_INTERNAL',
        `docker-registry exited with ${child.exitCode}: ${stderr().trim()}`,
      )
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.status === 200 || res.status === 401) return
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  throw new CofferError('ERR_INTERNAL', `docker-registry did not come up on ${host}: ${stderr().trim()}`)
}
