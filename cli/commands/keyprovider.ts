// Not the area's index: cmd mode runs once per layer, and must not pay for loading grpc-js.
import {
  createKekKeyProvider,
  DEFAULT_PROVIDER_NAME,
  loadKeyring,
  serveKeyProviderCmd,
  type KeyProviderServer,
} from '../../lib/crypt/keyprovider/server.js'
import { CofferError } from '../../lib/util/errors.js'
import type { CommandContext } from '../run.js'

/**
 * `coffer keyprovider --kek [ID=]FILE… [--name NAME] [--grpc ADDR]`: an ocicrypt key provider
 * wrapping layer keys with local KEKs (lib/crypt/keyprovider/kek-wrap.ts).
 *
 * Without `--grpc` it is a cmd provider: one request on stdin, one response on stdout, exit.
 * stdout then carries only the protocol, so nothing else is printed there. With `--grpc ADDR`
 * (`PORT` means 127.0.0.1:PORT) it serves gRPC until SIGINT/SIGTERM.
 *
 * opts: `kek` (string[], required), `name` (string), `grpc` (string).
 */
export async function keyproviderCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const keks = (opts.kek as string[] | undefined) ?? []
  if (keks.length === 0) throw new CofferError('ERR_USAGE', 'give at least one --kek [ID=]FILE')
  const name = typeof opts.name === 'string' && opts.name ? opts.name : DEFAULT_PROVIDER_NAME
  const server: KeyProviderServer = { name, handler: createKekKeyProvider(await loadKeyring(keks)) }

  if (typeof opts.grpc !== 'string') {
    await serveKeyProviderCmd(server, { stdin: process.stdin, stdout: process.stdout, signal: ctx.signal })
    return
  }

  const { startKeyProviderGrpcServer } = await import('../../lib/crypt/keyprovider/grpc-server.js')
  const running = await startKeyProviderGrpcServer(server, opts.grpc, { signal: ctx.signal })
  ctx.emit({ listening: running.address, name })
  ctx.say(`coffer keyprovider "${name}" listening on ${running.address} (gRPC, plaintext)`)
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve()
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true })
  })
  await running.close()
}
