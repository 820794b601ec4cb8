import { resolve } from 'node:path'
import { CofferError } from '../../lib/util/errors.js'
import type { CommandContext } from '../run.js'

/** Kubernetes' convention: the plugin's socket at /csi/csi.sock inside its container. */
export const DEFAULT_CSI_ENDPOINT = 'unix:///csi/csi.sock'
export const DEFAULT_CSI_STATE_DIR = '/var/lib/coffer/csi'

/**
 * `coffer csi serve --endpoint unix:///csi/csi.sock --node-id ID [--state-dir DIR]
 * [--passphrase-file F]`: serves the CSI driver until SIGINT/SIGTERM. Mounts stay when it stops:
 * pods keep using them, and `coffer umount` (or NodeUnpublish after a restart) undoes them.
 */
export async function csiServeCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const endpoint = (opts.endpoint as string | undefined) ?? process.env.CSI_ENDPOINT ?? DEFAULT_CSI_ENDPOINT
  const nodeId = (opts.nodeId as string | undefined) ?? process.env.CSI_NODE_ID
  if (!nodeId) throw new CofferError('ERR_USAGE', '--node-id is required (or $CSI_NODE_ID)')
  const stateDir = resolve((opts.stateDir as string | undefined) ?? DEFAULT_CSI_STATE_DIR)
  const passphraseFile = opts.passphraseFile as string | undefined
  const { startCsiServer, createCliVolumeMounter, createCliVolumeFormatter, DRIVER_NAME } =
    await import('../../lib/csi/index.js')
  const { readFileSync } = await import('node:fs')
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  const log = (line: string): void => {
    if (!ctx.quiet) process.stderr.write(`coffer csi: ${line}\n`)
  }
  const server = await startCsiServer(
    {
      endpoint,
      nodeId,
      stateDir,
      vendorVersion: pkg.version,
      mounter: createCliVolumeMounter({ log }),
      formatter: createCliVolumeFormatter({ log }),
      ...(passphraseFile
        ? { defaultKey: { kind: 'passphrase-file' as const, path: resolve(passphraseFile) } }
        : {}),
    },
    { signal: ctx.signal },
  )
  ctx.emit({ listening: server.socket, driver: DRIVER_NAME, nodeId, stateDir })
  ctx.say(
    `CSI driver ${DRIVER_NAME} on ${server.socket} (node ${nodeId}, state ${stateDir}); Ctrl-C to stop.`,
  )
  await new Promise<void>((res) => {
    if (ctx.signal.aborted) res()
    else ctx.signal.addEventListener('abort', () => res(), { once: true })
  })
  await server.close()
  ctx.emit({ stopped: server.socket })
}
