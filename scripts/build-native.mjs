#!/usr/bin/env node
/**
 * Compiles coffer's one native addon, native/gcm-blocks.c (AES-256-GCM over runs of gocryptfs
 * blocks, see that file for why), into native/build/gcm-blocks.node and copies it to the same
 * place under dist/, where the compiled lib/storage/native-gcm.js looks for it. Run by
 * `npm run build`.
 *
 * No node-gyp: one C file, Node's own headers (they include the OpenSSL headers that match the
 * OpenSSL inside node) and the system C compiler (Debian: gcc, from scripts/install-system-deps.sh).
 * The OpenSSL and N-API symbols resolve against the running node at load time.
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const source = join(root, 'native', 'gcm-blocks.c')
const built = join(root, 'native', 'build', 'gcm-blocks.node')
const shipped = join(root, 'dist', 'native', 'build', 'gcm-blocks.node')

/** Node's headers: beside the binary (NodeSource, official tarballs) or under its configured prefix. */
const headerDirs = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  join(process.config.variables.node_prefix ?? '/usr', 'include', 'node'),
]
const include = headerDirs.find((d) => existsSync(join(d, 'node_api.h')))
if (!include) {
  console.error(
    `build-native: Node's C headers (node_api.h) are not in ${headerDirs.join(' or ')}.\n` +
      'Install the Node.js package that ships them (NodeSource nodejs, or Debian libnode-dev).',
  )
  process.exit(1)
}

mkdirSync(dirname(built), { recursive: true })
const flags = [
  '-O2',
  '-std=c11',
  '-Wall',
  '-Wextra',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  // Hardening, as Debian builds its own packages.
  '-fstack-protector-strong',
  '-D_FORTIFY_SOURCE=2',
  '-Wl,-z,relro,-z,now',
]
try {
  execFileSync(process.env.CC ?? 'cc', [...flags, `-I${include}`, '-o', built, source], { stdio: 'inherit' })
} catch (err) {
  console.error(`build-native: compiling ${source} failed (is a C compiler installed? npm run deps:system)`)
  process.exit(typeof err.status === 'number' ? err.status : 1)
}
mkdirSync(dirname(shipped), { recursive: true })
copyFileSync(built, shipped)
