import type { Io } from '../util/io.js'
import type { ImageDestination, ImageSource } from './image-transport.js'
import type { ImageName } from './image-name.js'
import { openLayoutDestination } from './layout/layout-destination.js'
import { openLayoutSource } from './layout/layout-source.js'
import type { RegistryAccess } from './registry/access.js'
import type { UploadOptions } from './registry/blob-upload.js'
import { openRegistryDestination } from './registry/registry-destination.js'
import { openRegistrySource } from './registry/registry-source.js'

/** The one switch over transports (containers/image `alltransports`). */
export function openImageSource(
  name: ImageName,
  access: RegistryAccess = {},
  o: Io = {},
): Promise<ImageSource> {
  return name.transport === 'oci'
    ? openLayoutSource(name.dir, name.tag)
    : openRegistrySource(name.ref, access, o)
}

export async function openImageDestination(
  name: ImageName,
  access: RegistryAccess & UploadOptions = {},
): Promise<ImageDestination> {
  return name.transport === 'oci'
    ? openLayoutDestination(name.dir, name.tag)
    : openRegistryDestination(name.ref, access)
}
