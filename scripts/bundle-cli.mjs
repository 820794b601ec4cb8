#!/usr/bin/env node
/**
 * Bundles the `coffer` command into dist/bundle/ (coffer.js and the chunks it imports) and makes
 * dist/cli/main.js, the package's "bin", a two-line stub that imports it. Run by `npm run build`,
 * after tsc.
 *
 * Why: unbundled, every run loaded about 250 ES modules one file at a time (zod alone is 230
 * files, most of them locales coffer never uses), about 0.2 s of a 1.7 s `coffer encrypt` of a
 * 512 MiB image and most of a `coffer keyprovider` call, which skopeo and containerd spawn once
 * per layer key. Bundled, the command and its dependencies are one file plus the chunks that only
 * some commands import (each command still loads only what it uses).
 *
 * What stays unbundled, in dist/ as tsc wrote it: the worker threads' entry files (a worker loads
 * only its own small module graph), the library entry points of package.json "exports", and
 * packages with native addons or files of their own, which are imported from node_modules at run
 * time. coffer's own addons (native/build/*.node) are found through the rewritten URLs below.
 *
 * The one rewrite: code that finds files next to itself (`new URL('./layer-worker.js',
 * import.meta.url)`, package.json, csi.proto) would look next to the bundle instead. Each bundled
 * source file's `import.meta.url` is therefore replaced by the URL of the file tsc wrote for it,
 * computed relative to the bundle at run time, so the bundle can move with dist/ (npm install).
 */
import { build } from 'esbuild'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
/** The bundle and its chunks, in one directory: rewritten URLs are relative to it. */
const outdir = join(root, 'dist', 'bundle')
/** What package.json "bin" names; tsc wrote the unbundled command there, this replaces it. */
const bin = join(root, 'dist', 'cli', 'main.js')

/**
 * The packages bundled with coffer's own code: the ones every command loads, with many files each.
 * The rest stay in node_modules and load when a command imports them: packages that find files or workers beside themselves (@grpc/*, pino), big ones that only
 * servers use, and commander: scripts/gen-command-reference.mjs walks the built program with its
 * own copy of commander's classes, which must be the ones the bundle uses.
 */
const BUNDLED_PACKAGES = [
  'zod',
  'jose',
  'smol-toml',
  'proper-lockfile',
  'graceful-fs',
  'retry',
  'signal-exit',
]

/** `import.meta.url` of a source file → the URL of its tsc output, relative to the bundle's directory. */
const importMetaUrlOfOutput = {
  name: 'import-meta-url-of-tsc-output',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8')
      if (!source.includes('import.meta.url')) return { contents: source, loader: 'ts' }
      const compiled = join(root, 'dist', relative(root, args.path)).replace(/\.ts$/, '.js')
      const fromBundle = relative(outdir, compiled).split(sep).join('/')
      const url = `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`
      return { contents: source.replaceAll('import.meta.url', url), loader: 'ts' }
    })
  },
}

/** Every bare import that is not in BUNDLED_PACKAGES (or a subpath of one) is left to node_modules. */
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true }
      const name = args.path.startsWith('@')
        ? args.path.split('/').slice(0, 2).join('/')
        : args.path.split('/')[0]
      return BUNDLED_PACKAGES.includes(name) ? undefined : { path: args.path, external: true }
    })
  },
}

// Chunk names carry content hashes: without this, every build would leave the last one's behind.
await rm(outdir, { recursive: true, force: true })

await build({
  entryPoints: { coffer: join(root, 'cli', 'main.ts') },
  outdir,
  bundle: true,
  splitting: true,
  // Beside the entry: a bundled module's rewritten import.meta.url is relative to that directory.
  chunkNames: '[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // proper-lockfile and its helpers are CommonJS: their require() calls for Node's own modules need a real require.
  banner: {
    js: "import { createRequire as __cofferRequire } from 'node:module'\nconst require = __cofferRequire(import.meta.url)",
  },
  sourcemap: 'linked',
  // The bundled packages' licence headers stay in the files that carry their code.
  legalComments: 'eof',
  logLevel: 'warning',
  plugins: [externalPackages, importMetaUrlOfOutput],
})

await writeFile(
  bin,
  "#!/usr/bin/env node\n// The coffer command, bundled by scripts/bundle-cli.mjs.\nimport '../bundle/coffer.js'\n",
  { mode: 0o755 },
)
await rm(`${bin}.map`, { force: true })
await rm(bin.replace(/\.js$/, '.d.ts'), { force: true })
