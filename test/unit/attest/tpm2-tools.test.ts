/**
 * runTpm2Tool's process handling, with small shell scripts standing in for tpm2-tools (the real
 * tools run in test/integration/tpm.test.ts): exit codes, stderr in the error, bounded output,
 * timeout, cancellation, a missing tool, and one run per TPM at a time.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runTpm2Tool } from '../../../lib/attest/tpm/tpm2-tools.js'
import { MAX_TPM_TOOL_OUTPUT_BYTES } from '../../../lib/util/limits.js'

let dir: string

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, `#!/bin/sh\n${body}\n`)
  await chmod(path, 0o755)
  return path
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-tpm2-tools-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('runTpm2Tool', () => {
  it('passes -T <tcti> first and the arguments as an array, never through a shell', async () => {
    const echo = await script('args', 'for a in "$@"; do echo "[$a]"; done')
    const out = await runTpm2Tool(echo, ['-c', '$(touch pwned); x'], { tcti: 'swtpm:port=1' })
    expect(out.stdout).toBe('[-T]\n[swtpm:port=1]\n[-c]\n[$(touch pwned); x]\n')
  })

  it('a non-zero exit is ERR_ATTEST_DEVICE_FAILED with the tool’s stderr', async () => {
    const fail = await script(
      'fail',
      'echo "ERROR: Esys_Quote(0x18B) - the handle is not correct" >&2; exit 1',
    )
    await expect(runTpm2Tool(fail, [], { tcti: 'x' })).rejects.toMatchObject({
      code: 'ERR_ATTEST_DEVICE_FAILED',
      message: expect.stringMatching(/fail failed \(exit 1\): ERROR: Esys_Quote\(0x18B\)/),
    })
  })

  it('keeps at most MAX_TPM_TOOL_OUTPUT_BYTES of output', async () => {
    const chatty = await script('chatty', 'head -c 1000000 /dev/zero | tr "\\0" x >&2; exit 3')
    const err = (await runTpm2Tool(chatty, [], { tcti: 'x' }).catch((e: unknown) => e)) as Error
    expect(err.message.length).toBeLessThan(MAX_TPM_TOOL_OUTPUT_BYTES + 200)
  })

  it('kills a hung tool at the timeout, and on abort', async () => {
    const hang = await script('hang', 'exec sleep 30')
    const t0 = Date.now()
    await expect(runTpm2Tool(hang, [], { tcti: 'x', timeoutMs: 200 })).rejects.toMatchObject({
      code: 'ERR_ATTEST_DEVICE_FAILED',
      message: expect.stringMatching(/timed out after 200 ms/),
    })
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 100)
    await expect(runTpm2Tool(hang, [], { tcti: 'y', signal: ac.signal })).rejects.toMatchObject({
      code: 'ERR_CANCELED',
    })
    expect(Date.now() - t0).toBeLessThan(5_000)
  })

  it('a missing tool is ERR_ATTEST_DEVICE_FAILED naming tpm2-tools', async () => {
    await expect(runTpm2Tool('tpm2_no_such_tool', [], { tcti: 'x' })).rejects.toMatchObject({
      code: 'ERR_ATTEST_DEVICE_FAILED',
      message: expect.stringMatching(/is tpm2-tools installed/),
    })
  })

  it('runs one tool per TCTI at a time, even after a failure', async () => {
    const log = join(dir, 'log')
    const slow = await script(
      'slow',
      `echo "start $4" >> ${log}; sleep 0.2; echo "end $4" >> ${log}; [ "$4" != b ]`,
    )
    const runs = ['a', 'b', 'c'].map((id) =>
      runTpm2Tool(slow, ['-x', id], { tcti: 'same' }).then(
        () => 'ok',
        () => 'failed',
      ),
    )
    expect(await Promise.all(runs)).toEqual(['ok', 'failed', 'ok'])
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
      'start a',
      'end a',
      'start b',
      'end b',
      'start c',
      'end c',
    ])
  })
})
