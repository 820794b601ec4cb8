import { CofferError } from '../util/errors.js'
import { formatDockerReference, parseDockerReference, type DockerReference } from './reference.js'

/**
 * `transport:reference` image names as skopeo takes them (containers/image `alltransports.ParseImageName`).
 * coffer speaks two transports: an OCI image layout directory and a registry.
 */
export type ImageName =
  | { readonly transport: 'oci'; readonly dir: string; readonly tag?: string }
  | { readonly transport: 'docker'; readonly ref: DockerReference }

/**
 * An `org.opencontainers.image.ref.name` value (image-spec `annotations.md`): components of
 * alphanumerics joined by `-._:@+` or `--`, separated by `/`.
 */
const REF_NAME =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/

/** Parses `oci:DIR[:TAG]` or `docker://REFERENCE`. Throws ERR_OCI_TRANSPORT_UNKNOWN / ERR_OCI_REFERENCE_INVALID. */
export function parseImageName(input: string): ImageName {
  const sep = input.indexOf(':')
  const transport = sep > 0 ? input.slice(0, sep) : ''
  const rest = input.slice(sep + 1)
  switch (transport) {
    case 'oci':
      return parseOciName(rest, input)
    case 'docker':
      if (!rest.startsWith('//')) {
        throw new CofferError(
          'ERR_OCI_REFERENCE_INVALID',
          `invalid image name "${input}": the docker transport is written docker://HOST/REPO[:TAG|@DIGEST]`,
        )
      }
      return { transport: 'docker', ref: parseDockerReference(rest.slice(2)) }
    default:
      throw new CofferError(
        'ERR_OCI_TRANSPORT_UNKNOWN',
        sep > 0
          ? `unknown transport "${transport}" in "${input}": use oci:DIR[:TAG] or docker://HOST/REPO[:TAG]`
          : `"${input}" names no transport: use oci:DIR[:TAG] or docker://HOST/REPO[:TAG]`,
      )
  }
}

function parseOciName(rest: string, input: string): ImageName {
  // As containers/image on Unix: the directory ends at the first ':'.
  const colon = rest.indexOf(':')
  const dir = colon >= 0 ? rest.slice(0, colon) : rest
  const tag = colon >= 0 ? rest.slice(colon + 1) : undefined
  if (dir === '')
    throw new CofferError(
      'ERR_OCI_REFERENCE_INVALID',
      `invalid image name "${input}": the directory is empty`,
    )
  if (tag !== undefined && !REF_NAME.test(tag)) {
    throw new CofferError(
      'ERR_OCI_REFERENCE_INVALID',
      `invalid image name "${input}": "${tag}" is not a valid OCI reference name (letters, digits and -._:@+ between them)`,
    )
  }
  return { transport: 'oci', dir, ...(tag ? { tag } : {}) }
}

export function formatImageName(name: ImageName): string {
  return name.transport === 'oci'
    ? `oci:${name.dir}${name.tag ? `:${name.tag}` : ''}`
    : `docker://${formatDockerReference(name.ref)}`
}
