import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import type { PluginSettings } from './types.js'

/**
 * Validates a plugin's settings with its zod schema; a bad setting is ERR_CONFIG_INVALID naming
 * the plugin and the first offending key.
 */
export function parsePluginSettings<T extends z.ZodType>(
  schema: T,
  settings: PluginSettings | undefined,
  plugin: string,
): z.infer<T> {
  const r = schema.safeParse(settings ?? {})
  if (!r.success) {
    const issue = r.error.issues[0]
    const where = issue?.path.length ? ` (${issue.path.join('.')})` : ''
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `${plugin} settings are invalid${where}: ${issue?.message ?? ''}`,
      {
        cause: r.error,
      },
    )
  }
  return r.data
}
