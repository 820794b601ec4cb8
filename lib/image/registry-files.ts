/**
 * The guest's registry files from its config: registries.d (lookaside, sigstore attachments),
 * auth.json and registries.conf, each a local path or a `kbs:///…` resource read through the one
 * {@link LocationReader}. KBS content stays in memory: auth.json goes to the credential lookup as
 * bytes, registries.conf and registries.d are parsed from the bytes.
 */
import { stat } from 'node:fs/promises'
import type { RegistryAccess } from '../oci/registry/access.js'
import { parseRegistriesConf } from '../oci/registry/registries-conf.js'
import { loadRegistriesD, registriesDFromDocument, type RegistriesD } from '../sign/registries-d.js'
import type { Io } from '../util/io.js'
import { isKbsLocation } from './config.js'
import {
  AUTH_LOCATION,
  REGISTRIES_CONF_LOCATION,
  REGISTRIES_D_LOCATION,
  type LocationReader,
} from './trust-material.js'

/**
 * registries.d from `location`: a directory (every `*.yaml`, as containers-registries.d(5)), or one
 * YAML document (a `kbs:///…` resource or a local file); unset, the default directories.
 */
export async function loadGuestRegistriesD(
  location: string | undefined,
  read: LocationReader,
  o: Io = {},
): Promise<RegistriesD> {
  if (location === undefined) return loadRegistriesD()
  if (!isKbsLocation(location) && !(await isFile(location))) return loadRegistriesD(location)
  const bytes = await read(location, REGISTRIES_D_LOCATION, o)
  return registriesDFromDocument(Buffer.from(bytes).toString('utf8'), location)
}

/** Where the config puts the registry files the flags did not already name. */
export interface RegistryFileLocations {
  /** containers-auth.json; used only when no `--authfile` / `--creds` was given. */
  auth?: string
  /** registries.conf (one file, no `.d` drop-ins); used only when no `--registries-conf` was given. */
  registriesConf?: string
}

/** `access` with the configured auth.json and registries.conf in place of the defaults. */
export async function withRegistryFiles(
  access: RegistryAccess,
  locations: RegistryFileLocations,
  read: LocationReader,
  o: Io = {},
): Promise<RegistryAccess> {
  const out: RegistryAccess = { ...access }
  if (locations.auth !== undefined) {
    const bytes = await read(locations.auth, AUTH_LOCATION, o)
    delete out.authfile
    out.authFileContent = { source: locations.auth, bytes }
  }
  if (locations.registriesConf !== undefined) {
    const bytes = await read(locations.registriesConf, REGISTRIES_CONF_LOCATION, o)
    out.registriesConf = parseRegistriesConf(Buffer.from(bytes).toString('utf8'), locations.registriesConf)
  }
  return out
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  )
}
