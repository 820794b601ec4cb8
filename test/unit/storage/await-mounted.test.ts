/** Waiting for a `coffer mount --json` child: real child processes that report, die, hang. */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { awaitMounted, isMountedEvent, MountWaitError } from '../../../lib/storage/mount/await-mounted.js'

const children: ChildProcess[] = []
function child(script: string): ChildProcess {
  const c = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] })
  children.push(c)
  return c
}
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

async function reasonOf(p: Promise<void>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(MountWaitError)
  return (err as MountWaitError).reason
}

describe('awaitMounted', () => {
  it('resolves on the mounted line, even after other output and split across writes', async () => {
    const c = child(
      `process.stdout.write('{"progress":1}\\n{"mou'); setTimeout(() => process.stdout.write('nted":"/m"}\\n'), 50); setInterval(() => {}, 1000)`,
    )
    await awaitMounted(c, { timeoutMs: 10_000 })
    expect(c.exitCode).toBeNull() // the child is the caller's: still serving
  })

  it('rejects when the child exits first', async () => {
    expect(await reasonOf(awaitMounted(child('process.exit(3)'), { timeoutMs: 10_000 }))).toBe('exited')
  })

  it('rejects after the timeout, and on abort', async () => {
    expect(await reasonOf(awaitMounted(child('setInterval(() => {}, 1000)'), { timeoutMs: 200 }))).toBe(
      'timeout',
    )
    const ac = new AbortController()
    const waiting = awaitMounted(child('setInterval(() => {}, 1000)'), {
      timeoutMs: 10_000,
      signal: ac.signal,
    })
    ac.abort()
    expect(await reasonOf(waiting)).toBe('canceled')
  })

  it('knows the mounted event only as a JSON object with "mounted"', () => {
    expect(isMountedEvent('{"mounted":"/x"}')).toBe(true)
    expect(isMountedEvent('mounted')).toBe(false)
    expect(isMountedEvent('{"mounted"')).toBe(false)
    expect(isMountedEvent('["mounted"]')).toBe(false)
  })
})
