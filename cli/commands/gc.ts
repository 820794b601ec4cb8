import { parseImageName } from '../../lib/oci/image-name.js'
import { openLayout } from '../../lib/oci/layout/layout-store.js'
import { CofferError } from '../../lib/util/errors.js'
import { humanBytes } from '../progress.js'
import type { CommandContext } from '../run.js'

/** `coffer gc oci:DIR`. */
export async function gcCommand(
  layout: string,
  _opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(layout.includes(':') ? layout : `oci:${layout}`)
  if (name.transport !== 'oci' || name.tag)
    throw new CofferError('ERR_USAGE', 'gc takes an OCI layout directory: oci:DIR')
  const store = await openLayout(name.dir)
  const result = await store.gc(ctx)
  ctx.emit(result)
  ctx.say(
    `Removed ${result.removedBlobs} unreferenced blobs (${humanBytes(result.removedBytes)}) from ${name.dir}`,
  )
}
