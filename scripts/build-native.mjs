#!/usr/bin/env node
/**
 * Compiles coffer's native addons into native/build/ and copies them to the same place under
 * dist/, where the compiled modules look for them. Run by `npm run build`.
 *   gcm-blocks.c   AES-256-GCM over runs of gocryptfs blocks (lib/storage/native-gcm.ts)
 *   fuse-bridge.c  the FUSE binding over Debian's libfuse2 (lib/storage/fuse/binding.ts)
 *
 * No node-gyp: one C file each, Node's own headers (they include the OpenSSL headers that match
 * the OpenSSL inside node), libfuse's from Debian's libfuse-dev (via pkg-config), and the system
 * C compiler (Debian: gcc, from scripts/install-system-deps.sh). The OpenSSL and N-API symbols
 * resolve against the running node at load time.
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))

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

/** libfuse's compiler and linker flags (`-I/usr/include/fuse -D_FILE_OFFSET_BITS=64 -lfuse -pthread`). */
function fuseFlags(kind) {
  try {
    return execFileSync('pkg-config', [kind, 'fuse'], { encoding: 'utf8' })
      .trim()
      .split(/\s+/)
      .filter(Boolean)
  } catch {
    console.error(
      'build-native: libfuse 2 headers not found (pkg-config fuse). Debian: libfuse-dev; npm run deps:system',
    )
    process.exit(1)
  }
}

const addons = [
  { name: 'gcm-blocks', cflags: [], libs: [] },
  { name: 'fuse-bridge', cflags: fuseFlags('--cflags'), libs: fuseFlags('--libs') },
]
for (const { name, cflags, libs } of addons) {
  const source = join(root, 'native', `${name}.c`)
  const built = join(root, 'native', 'build', `${name}.node`)
  const shipped = join(root, 'dist', 'native', 'build', `${name}.node`)
  mkdirSync(dirname(built), { recursive: true })
  try {
    execFileSync(
      process.env.CC ?? 'cc',
      [...flags, ...cflags, `-I${include}`, '-o', built, source, ...libs],
      {
        stdio: 'inherit',
      },
    )
  } catch (err) {
    console.error(`build-native: compiling ${source} failed (is a C compiler installed? npm run deps:system)`)
    process.exit(typeof err.status === 'number' ? err.status : 1)
  }
  mkdirSync(dirname(shipped), { recursive: true })
  copyFileSync(built, shipped)
}
