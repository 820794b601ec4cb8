import { parseImageName } from '../../lib/oci/image-name.js'
import { pullEndpoints } from '../../lib/oci/registry/access.js'
import { CofferError } from '../../lib/util/errors.js'
import { registryAccess } from '../flags.js'
import type { CommandContext } from '../run.js'

/** `coffer list-tags docker://HOST/REPO`: every tag of a repository, as skopeo list-tags. */
export async function listTagsCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(image)
  if (name.transport !== 'docker')
    throw new CofferError('ERR_USAGE', 'list-tags takes a repository: docker://HOST/REPO')
  // Pulls may come from a mirror; listing asks the origin, which is the authority on tags.
  const endpoints = pullEndpoints(name.ref, await registryAccess(opts, ''))
  const origin = endpoints.at(-1)!.repository
  try {
    const tags = await origin.listTags(ctx)
    if (ctx.json) ctx.emit({ repository: `${name.ref.host}/${name.ref.repository}`, tags })
    else for (const tag of tags) ctx.say(tag)
  } finally {
    await Promise.all(endpoints.map((e) => e.repository.registry.close()))
  }
}
