import type { KbsClient } from '../lib/kbs/client.js'
import { attesterSettings } from './attester-flags.js'

export const DEFAULT_KBS_URL = 'http://127.0.0.1:8080'

/**
 * A KBS client from the shared flags of commands that reach a KBS beside a registry: `--kbs-url`
 * (else $COFFER_KBS_URL, else the local default), `--attester` (else detection, never sample) with
 * `--attester-opt` settings, and `--no-kbs-tls-verify` (a registry's --tls-verify never applies to
 * the KBS). `extra` carries values from a config file or a command's own flags, which these override.
 */
export async function attestedKbsClient(
  opts: Record<string, unknown>,
  extra: { url?: string; attester?: string; settings?: Record<string, string>; tlsVerify?: boolean } = {},
): Promise<KbsClient> {
  const { KbsClient } = await import('../lib/kbs/client.js')
  const { selectAttester } = await import('../lib/attest/select.js')
  const plugins = await import('../plugins/index.js')
  const attester = await selectAttester(plugins, (opts.attester as string | undefined) ?? extra.attester, {
    ...extra.settings,
    ...attesterSettings(opts.attesterOpt),
  })
  const url =
    (opts.kbsUrl as string | undefined) ??
    (opts.url as string | undefined) ??
    extra.url ??
    process.env.COFFER_KBS_URL ??
    DEFAULT_KBS_URL
  return new KbsClient({
    url,
    attester,
    tlsVerify: opts.kbsTlsVerify !== false && extra.tlsVerify !== false,
  })
}
