/**
 * The demo's KBS: `coffer kbs serve` in this process on 127.0.0.1 and a free port, its data and log
 * in the work directory, the demo's admin key allowed. Only the verifier of the guest's attester is
 * enabled: the sample TEE is accepted only when the guest has to fall back to it.
 */
import { createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { parseKbsConfig } from '../../lib/kbs/config.js'
import { startKbs } from '../../lib/kbs/serve.js'

export interface LocalKbs {
  readonly url: string
  readonly logFile: string
  close(): Promise<void>
}

export async function startLocalKbs(
  work: string,
  adminPub: string,
  verifier: 'tpm' | 'sample',
): Promise<LocalKbs> {
  const { createVerifier, verifierNames, openKbsStore } = await import('../../plugins/index.js')
  const config = parseKbsConfig(
    {
      data_dir: join(work, 'kbs'),
      http: { address: '127.0.0.1', port: 0 },
      attestation: { allow_sample: verifier === 'sample', verifiers: [verifier] },
      admin: { public_keys: [adminPub] },
      log: { level: 'info' },
    },
    work,
  )
  const logFile = join(work, 'kbs.log')
  const log = createWriteStream(logFile)
  const endLog = (): Promise<void> => new Promise((resolve) => log.end(resolve))
  try {
    const kbs = await startKbs(
      config,
      { verifierNames, createVerifier, createStore: openKbsStore },
      'coffer demo',
      {
        logStream: log,
      },
    )
    return {
      url: kbs.url,
      logFile,
      async close() {
        try {
          await kbs.close()
        } finally {
          await endLog()
        }
      },
    }
  } catch (err) {
    await endLog()
    throw err
  }
}
