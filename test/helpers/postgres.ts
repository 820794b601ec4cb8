/**
 * A real PostgreSQL for integration tests: Debian's server binaries (package `postgresql`, found
 * under /usr/lib/postgresql/<version>/bin), a fresh cluster in a temp dir, listening on 127.0.0.1 at
 * a free port and on a unix socket in that dir. A superuser `coffer` logs in with a password over
 * TCP (scram-sha-256), so tests exercise password settings; local socket logins are trusted.
 *
 * PostgreSQL refuses to run as root: when the tests run as root, the cluster belongs to the
 * `postgres` user and every server binary runs through `runuser -u postgres --`.
 *
 * Lifecycle: `startPostgres` resolves once the server accepts connections; `stop()` runs
 * `pg_ctl stop -m fast` and deletes the temp dir. A failed start cleans up before it throws, and an
 * exit hook stops (`-m immediate`) any cluster still running when the test process exits.
 *
 * ```ts
 * const db = await startPostgres()
 * const database = await db.createDatabase()
 * const store = await createPostgresStore({ ...db.settings(database) })
 * await db.stop()
 * ```
 */
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const execFileP = promisify(execFile)

const PG_ROOT = '/usr/lib/postgresql'
const SUPERUSER = 'coffer'
const START_TIMEOUT_S = 30
const PORT_ATTEMPTS = 3

export interface TestPostgres {
  host: '127.0.0.1'
  port: number
  user: string
  password: string
  /** A file holding the password (with a trailing newline, as secret files usually have one). */
  passwordFile: string
  /** The unix socket directory. */
  socketDir: string
  /** `postgres://coffer@127.0.0.1:<port>/<database>` (no password: pass `passwordFile`). */
  url(database?: string): string
  /** `{ host, port, user, database, passwordFile }` for the postgres store. */
  settings(database?: string): {
    host: string
    port: number
    user: string
    database: string
    passwordFile: string
  }
  /** Creates a new empty database and returns its name. */
  createDatabase(): Promise<string>
  /** Runs SQL as the superuser in `database` (default `postgres`). */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    database?: string,
  ): Promise<R[]>
  /** `pg_ctl stop -m fast` then start again on the same port (for outage tests). */
  stopServer(): Promise<void>
  startServer(): Promise<void>
  /** Stops the server and deletes the cluster. Idempotent. */
  stop(): Promise<void>
}

/** Clusters not yet stopped: the exit hook stops them synchronously (`exit` handlers must be). */
const liveClusters = new Map<string, { asPostgres: boolean; bin: string; dir: string }>()
let exitHookInstalled = false
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const c of liveClusters.values()) {
      const cmd = wrap(c.asPostgres, join(c.bin, 'pg_ctl'), [
        '-D',
        join(c.dir, 'data'),
        '-m',
        'immediate',
        '-w',
        'stop',
      ])
      spawnSync(cmd.file, cmd.args, { cwd: c.dir, stdio: 'ignore' })
      rmSync(c.dir, { recursive: true, force: true })
    }
  })
}

/** The newest installed server's bin directory; a clear error when PostgreSQL is not installed. */
export async function postgresBinDir(): Promise<string> {
  let versions: string[] = []
  try {
    versions = (await readdir(PG_ROOT)).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  } catch {
    // handled below
  }
  for (const v of versions) {
    const bin = join(PG_ROOT, v, 'bin')
    try {
      await readdir(bin)
      if ((await readdir(bin)).includes('initdb')) return bin
    } catch {
      // try the next version
    }
  }
  throw new Error(`PostgreSQL server binaries not found under ${PG_ROOT}: run scripts/install-system-deps.sh`)
}

function wrap(asPostgres: boolean, file: string, args: string[]): { file: string; args: string[] } {
  return asPostgres ? { file: 'runuser', args: ['-u', 'postgres', '--', file, ...args] } : { file, args }
}

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address() as AddressInfo
  await new Promise((r) => srv.close(r))
  return port
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = await postgresBinDir()
  const asPostgres = process.getuid?.() === 0
  installExitHook()
  const dir = await mkdtemp(join(tmpdir(), 'coffer-pg-'))
  const data = join(dir, 'data')
  const socketDir = join(dir, 'sock')
  const password = `pw-${randomBytes(12).toString('hex')}`
  const passwordFile = join(dir, 'password')
  const run = async (tool: string, args: string[]) => {
    const cmd = wrap(asPostgres, join(bin, tool), args)
    try {
      return await execFileP(cmd.file, cmd.args, { cwd: dir, timeout: 120_000 })
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string }
      throw new Error(`${tool} failed: ${e.stderr || e.stdout || e.message}`)
    }
  }
  let port = 0
  let running = false
  const startServer = async (): Promise<void> => {
    await run('pg_ctl', [
      '-D',
      data,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      String(START_TIMEOUT_S),
      '-o',
      `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
      'start',
    ])
    running = true
  }
  const stopServer = async (): Promise<void> => {
    if (!running) return
    await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
    running = false
  }
  const cleanup = async (): Promise<void> => {
    await stopServer().catch(() => {})
    await rm(dir, { recursive: true, force: true })
    liveClusters.delete(dir)
  }
  liveClusters.set(dir, { asPostgres, bin, dir })
  try {
    await mkdir(socketDir, { mode: 0o700 })
    const initPw = join(dir, 'initdb-password')
    await writeFile(initPw, password, { mode: 0o600 })
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
    if (asPostgres) {
      const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
      const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
      const [uid, gid] = [Number(ids.stdout.trim()), Number(gids.stdout.trim())]
      if (!Number.isInteger(uid) || ids.status !== 0)
        throw new Error('running as root, but there is no postgres user')
      for (const p of [dir, socketDir, initPw]) await chown(p, uid, gid)
    }
    await run('initdb', [
      '-D',
      data,
      '-U',
      SUPERUSER,
      `--pwfile=${initPw}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ])
    await rm(initPw)
    let lastErr: unknown
    for (let attempt = 0; attempt < PORT_ATTEMPTS && !running; attempt++) {
      port = await freePort()
      try {
        await startServer()
      } catch (err) {
        lastErr = err
        const log = await readFile(join(dir, 'server.log'), 'utf8').catch(() => '')
        if (!/could not bind|Address already in use/.test(log)) break
      }
    }
    if (!running) throw lastErr
  } catch (err) {
    await cleanup()
    throw err
  }

  const url = (database = 'postgres') => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`
  const sql = async <R extends pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
    database = 'postgres',
  ) => {
    // Timeouts turn a stuck server into a test failure with a message instead of a hung test.
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password,
      database,
      connectionTimeoutMillis: 10_000,
      query_timeout: 30_000,
    })
    await client.connect()
    try {
      return (await client.query<R>(text, values)).rows
    } finally {
      await client.end()
    }
  }
  return {
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password,
    passwordFile,
    socketDir,
    url,
    settings: (database = 'postgres') => ({
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      database,
      passwordFile,
    }),
    createDatabase: async () => {
      const name = `t_${randomBytes(6).toString('hex')}`
      await sql(`CREATE DATABASE ${name}`)
      return name
    },
    sql,
    stopServer,
    startServer,
    stop: cleanup,
  }
}
