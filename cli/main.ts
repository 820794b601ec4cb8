#!/usr/bin/env node
/**
 * The `coffer` command. Only commander and this file load at start-up; each command's code is
 * imported when it runs, so `coffer --version` and `--help` stay fast.
 */
import { readFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { normalizeBoolFlags } from './bool-flags.js'
import { run } from './run.js'

/** commander collector for repeatable flags. */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const program = new Command('coffer')
  .description(
    'Toolchain for confidential containers: encrypt, sign, broker keys, pull inside a TEE, encrypted storage.',
  )
  .version(pkg.version, '-v, --version')
  .showHelpAfterError('(run with --help for usage)')
  // Usage errors exit 2, like every invalid_argument error (commander's own default is 1).
  .exitOverride((err) => {
    const ok =
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    process.exit(ok ? 0 : 2)
  })
  .configureHelp({ sortSubcommands: false })
  .addHelpText(
    'after',
    `
Image names:
  oci:DIR[:TAG]                           an OCI image layout directory
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST] a registry (docker.io defaults as in skopeo)

Exit codes: 0 ok, 2 bad input, 3 not found, 5 precondition, 6 unauthenticated,
  7 denied, 8 unavailable, 9 integrity check failed, 10 too large, 11 unsupported, 130 canceled.`,
  )

/** Flags that say how to reach a registry, with skopeo's names; `prefix` is `src-`/`dest-` or ''. */
function registryFlags(cmd: Command, prefix: '' | 'src-' | 'dest-', what: string): Command {
  return cmd
    .option(`--${prefix}creds <user:password>`, `credentials for the ${what} registry`)
    .option(
      `--${prefix}authfile <path>`,
      `auth.json for the ${what} registry (default: the containers/docker locations)`,
    )
    .addOption(
      new Option(
        `--${prefix}tls-verify`,
        `verify TLS for the ${what} registry (--${prefix}tls-verify=false to allow self-signed or plain HTTP)`,
      ),
    )
    .addOption(new Option(`--no-${prefix}tls-verify`).hideHelp())
}

function commonFlags(cmd: Command, sharedAuthfile = true): Command {
  if (sharedAuthfile) cmd.option('--authfile <path>', 'auth.json for both sides (also $REGISTRY_AUTH_FILE)')
  return cmd
    .option(
      '--registries-conf <path>',
      'registries.conf with mirrors (default: ~/.config/containers or /etc/containers)',
    )
    .option('--retry-times <n>', 'attempts per request on transient failures', '5')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'machine-readable output: one JSON event per line, then the result')
}

/** skopeo's encryption flags, shared by copy, encrypt and decrypt. */
function cryptFlags(cmd: Command, which: 'both' | 'encrypt' | 'decrypt'): Command {
  if (which !== 'decrypt') {
    cmd
      .option(
        '--encryption-key <scheme:value>',
        'encrypt layers for: jwe:KEY.pub, pkcs7:CERT.pem, pgp:KEY.asc, provider:NAME[:PARAMS] or kbs:///repo/type/tag (with --kek) (repeatable)',
        collect,
      )
      .option(
        '--encrypt-layer <indexes>',
        'only these layers: 0-based, negative from the top, e.g. 0,-1 (repeatable)',
        collect,
      )
  }
  if (which !== 'encrypt') {
    cmd
      .option(
        '--decryption-key <file[:password]>',
        'decrypt layers with this private key (repeatable)',
        collect,
      )
      .option('--kbs-url <url>', 'fetch the KEKs of kbs:///… keys from this KBS, after attesting')
      .option('--attester <name>', 'with --kbs-url: tpm, snp, tdx or sample (default: detect the TEE)')
      .option('--attester-opt <key=value>', 'with --kbs-url: attester setting (repeatable)', collect)
      .addOption(
        new Option('--kbs-tls-verify', 'verify the KBS TLS certificate (--kbs-tls-verify=false to skip)'),
      )
      .addOption(new Option('--no-kbs-tls-verify').hideHelp())
  }
  return cmd.option(
    '--kek <file>',
    'the 32-byte key-encryption key for kbs:///repo/type/tag keys (coffer keys generate --type aes)',
  )
}

/** copy, encrypt and decrypt share their arguments, flags and action; only the required step differs. */
function copyLike(name: 'copy' | 'encrypt' | 'decrypt', description: string, examples: string): void {
  const cmd = program
    .command(name)
    .description(description)
    .argument('<source>', 'image to read, e.g. docker://127.0.0.1:5000/app:1.0 or oci:./dir:tag')
    .argument('<destination>', 'where to write it, e.g. oci:./app:1.0')
    .option('-a, --all', 'copy every image of a multi-platform index, and the index itself')
    .option('--platform <os/arch[/variant]>', 'image to pick from an index (default: this machine)')
    .option('--concurrency <n>', 'blobs transferred at once', '6')
    .option(
      '--upload-chunk-size <bytes>',
      'upload in chunks of this size (e.g. 16MiB); default: one streamed request per blob',
    )
  cryptFlags(cmd, name === 'copy' ? 'both' : name)
  registryFlags(cmd, 'src-', 'source')
  registryFlags(cmd, 'dest-', 'destination')
  commonFlags(cmd)
    .addHelpText('after', `\nExamples:\n${examples}`)
    .action((source: string, destination: string, opts: Record<string, unknown>) => {
      if (name !== 'copy' || opts.encryptionKey || opts.decryptionKey) prestartLayerWorkers()
      return run(opts, async (ctx) =>
        (await import('./commands/copy.js')).copyCommand(source, destination, opts, ctx, name),
      )
    })
}

/**
 * Layer crypto runs on worker threads, which take ~0.15 s each to start here: start them now, while
 * this thread loads the command and reads keys and manifests, not when the first layer is ready.
 */
function prestartLayerWorkers(): void {
  import('../lib/crypt/layer-worker-pool.js').then(
    (m) => m.layerJobRunner().prestart(),
    () => {}, // a broken install fails on the first layer, with its own error
  )
}

copyLike(
  'copy',
  'Copy an image between OCI layouts and registries, byte for byte (or encrypting / decrypting on the way).',
  `  coffer copy oci:./build:app docker://127.0.0.1:5000/app:1.0
  coffer copy --all docker://registry.example/base:3 oci:./mirror:base-3
  coffer copy --src-creds me:secret --dest-tls-verify=false docker://reg.example/a docker://127.0.0.1:5000/a`,
)
copyLike(
  'encrypt',
  'Encrypt image layers for one or more recipients (ocicrypt format: skopeo, containerd imgcrypt and CoCo read it).',
  `  coffer keys generate --type rsa --out mykey          # writes mykey.key and mykey.pub
  coffer encrypt --encryption-key jwe:mykey.pub oci:./build:app oci:./enc:app
  coffer encrypt --encryption-key jwe:a.pub --encryption-key jwe:b.pub --encrypt-layer -1 \\
      oci:./build:app docker://127.0.0.1:5000/app:enc`,
)
copyLike(
  'decrypt',
  'Decrypt image layers with private keys; each layer is checked (HMAC, digest) before it is written.',
  `  coffer decrypt --decryption-key mykey.key oci:./enc:app oci:./plain:app
  coffer decrypt --decryption-key mykey.key:s3cret docker://127.0.0.1:5000/app:enc oci:./plain:app
  coffer decrypt --kbs-url https://kbs.example:8080 --attester tpm oci:./enc:app oci:./plain:app`,
)

program
  .command('keyprovider')
  .description(
    'Serve the ocicrypt key-provider protocol with local KEKs: one request on stdin → one answer on stdout, or --grpc.',
  )
  .option('--kek <[id=]file>', '32-byte KEK, raw or base64; id defaults to "default" (repeatable)', collect)
  .option('--name <name>', 'the key-providers name clients use for this provider', 'coffer')
  .option('--grpc <addr>', 'serve gRPC on HOST:PORT (PORT alone = 127.0.0.1:PORT)')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'gRPC mode: print {"listening":ADDR,"name":...}')
  .addHelpText(
    'after',
    `
Examples:
  coffer keys generate --type aes --out kek
  # OCICRYPT_KEYPROVIDER_CONFIG file for skopeo/containerd (ocicrypt >= 1.1) or coffer itself:
  #   {"key-providers": {"coffer": {"cmd": {"path": "coffer", "args": ["keyprovider", "--kek", "kek.key"]}}}}
  coffer keyprovider --grpc 127.0.0.1:50051 --kek kek.key`,
  )
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/keyprovider.js')).keyproviderCommand(opts, ctx)),
  )

const keys = program.command('keys').description('Generate and manage keys.')
keys
  .command('generate')
  .description(
    'Generate a key: PREFIX.key (private, mode 0600) and PREFIX.pub. rsa/ec: PKCS#8 PEM for encryption; cosign: a cosign signing key (password from COSIGN_PASSWORD or a prompt); aes: PREFIX.key only.',
  )
  .requiredOption(
    '--type <rsa|ec|aes|cosign>',
    'key type (aes: a 256-bit key-encryption key for a KBS; cosign: P-256 signing key in cosign format)',
  )
  .requiredOption('--out <prefix>', 'file name prefix')
  .option('--bits <n>', 'RSA modulus size: 2048, 3072 or 4096', '3072')
  .option('--curve <name>', 'EC curve: P-256, P-384 or P-521', 'P-256')
  .option('--force', 'overwrite existing files')
  .option('--json', 'machine-readable output')
  .addHelpText(
    'after',
    '\nExamples:\n  coffer keys generate --type ec --out ./keys/app\n  coffer encrypt --encryption-key jwe:./keys/app.pub oci:./b:app oci:./e:app',
  )
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/keys.js')).keysGenerateCommand(opts, ctx)),
  )

program
  .command('sign')
  .description(
    'Sign an image in a registry: a cosign signature (--key, stored as the sha256-<digest>.sig tag) or a simple signature (--sign-by-gpg, stored in the registries.d lookaside).',
  )
  .argument('<image>', 'docker://HOST/REPO:TAG (the top-level manifest is signed, as stored)')
  .option('--key <cosign.key>', 'cosign private key (password from COSIGN_PASSWORD or a prompt)')
  .option('--sign-by-gpg <keyfile>', 'OpenPGP secret key file (armored or binary) for a simple signature')
  .option('--sign-passphrase-file <path>', 'passphrase for the --sign-by-gpg key')
  .option(
    '--sign-identity <reference>',
    'identity to sign (default: the image reference; cosign: its repository)',
  )
  .option(
    '--registries.d <dir>',
    'registries.d directory (default: ~/.config/containers/registries.d or /etc/containers/registries.d)',
  )
  .addOption(
    new Option(
      '--registry-referrers-mode <mode>',
      'cosign: legacy (the .sig tag) or oci-1-1 (an OCI 1.1 referrer; the fallback tag where the registry has no referrers API)',
    )
      .choices(['legacy', 'oci-1-1'])
      .default('legacy'),
  )
registryFlags(program.commands.at(-1)!, '', 'image')
commonFlags(program.commands.at(-1)!, false)
  .addHelpText(
    'after',
    `
Examples:
  coffer keys generate --type cosign --out cosign      # cosign.key, cosign.pub
  COSIGN_PASSWORD=... coffer sign --key cosign.key docker://127.0.0.1:5000/app:1.0
  coffer sign --sign-by-gpg signer.asc --registries.d ./registries.d docker://127.0.0.1:5000/app:1.0`,
  )
  .action((image: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/sign.js')).signCommand(image, opts, ctx)),
  )

program
  .command('verify')
  .description(
    'Check an image against a trust policy (containers-policy.json, as skopeo copy --policy) or one key; exit 0 only if accepted.',
  )
  .argument('<image>', 'docker://HOST/REPO:TAG|@DIGEST or oci:DIR[:TAG]')
  .option(
    '--policy <policy.json>',
    'trust policy (default: ~/.config/containers/policy.json or /etc/containers/policy.json)',
  )
  .option('--key <file>', 'cosign public key (PEM) or OpenPGP public keyring, instead of a policy')
  .option('--registries.d <dir>', 'registries.d directory: lookaside and use-sigstore-attachments')
registryFlags(program.commands.at(-1)!, '', 'image')
commonFlags(program.commands.at(-1)!, false)
  .addHelpText(
    'after',
    `
Examples:
  coffer verify --key cosign.pub docker://127.0.0.1:5000/app:1.0
  coffer verify --policy ./policy.json --registries.d ./registries.d docker://127.0.0.1:5000/app:1.0`,
  )
  .action((image: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/verify.js')).verifyCommand(image, opts, ctx)),
  )

const inspect = program
  .command('inspect')
  .description('Show an image: digest, platforms, layers, sizes, media types.')
  .argument('<image>', 'oci:DIR[:TAG] or docker://REFERENCE')
  .option('--raw', 'print the manifest (or index) exactly as stored')
  .option('--config', 'print the image config (with --raw: exactly as stored)')
  .option('--platform <os/arch[/variant]>', 'image to pick from an index (default: this machine)')
registryFlags(inspect, '', 'image')
commonFlags(inspect, false)
  .addHelpText(
    'after',
    `
Examples:
  coffer inspect oci:./build:app
  coffer inspect --raw docker://127.0.0.1:5000/app:1.0 | jq .
  coffer inspect --json --config docker://127.0.0.1:5000/app@sha256:...`,
  )
  .action((image: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/inspect.js')).inspectCommand(image, opts, ctx)),
  )

const listTags = program
  .command('list-tags')
  .description('List the tags of a repository in a registry.')
  .argument('<repository>', 'docker://HOST/REPO (a tag, if given, is ignored)')
registryFlags(listTags, '', 'image')
commonFlags(listTags, false)
  .addHelpText(
    'after',
    '\nExamples:\n  coffer list-tags docker://127.0.0.1:5000/app\n  coffer list-tags --json docker://registry.example/org/app | jq -r .tags[]',
  )
  .action((repository: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) =>
      (await import('./commands/list-tags.js')).listTagsCommand(repository, opts, ctx),
    ),
  )

program
  .command('gc')
  .description('Delete blobs that no tag in an OCI layout reaches (run when no copy into it is running).')
  .argument('<layout>', 'oci:DIR')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output')
  .action((layout: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/gc.js')).gcCommand(layout, opts, ctx)),
  )

const kbs = program
  .command('kbs')
  .description('Key Broker Service: serve it, administer it, or fetch a resource as an attested guest.')
  .addHelpText(
    'after',
    `
A guest proves what it runs (TEE evidence), gets a token, and receives only the resources the
resource policy grants, encrypted to a key that exists only in that guest.

Quick start (sample attester: tests and demos only):
  coffer keys generate --type ec --out admin
  coffer kbs serve --allow-sample --admin-key admin.pub --store memory &
  coffer kbs put-resource kbs:///default/key/app --file app.kek --admin-key admin.key
  coffer kbs set-policy policy.json --admin-key admin.key
  coffer kbs get-resource kbs:///default/key/app --attester sample --out app.kek`,
  )

/** Flags every KBS client command shares. */
function kbsClientFlags(cmd: Command, admin: boolean): Command {
  cmd.option('--url <url>', 'the KBS (default: $COFFER_KBS_URL or http://127.0.0.1:8080)')
  if (admin)
    cmd.option(
      '--admin-key <file>',
      'admin private key, Ed25519 or P-256 PEM (default: $COFFER_KBS_ADMIN_KEY)',
    )
  return cmd
    .addOption(new Option('--tls-verify', 'verify the KBS TLS certificate (--tls-verify=false to skip)'))
    .addOption(new Option('--no-tls-verify').hideHelp())
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'machine-readable output')
}

kbs
  .command('serve')
  .description('Run a KBS (trustee protocol 0.4.0) until SIGINT/SIGTERM.')
  .option('--config <file>', 'TOML configuration (see docs/kbs.md); flags below override it')
  .option('--address <addr>', 'listen address (default 127.0.0.1)')
  .option('--port <n>', 'listen port (default 8080; 0 = any free port)')
  .option('--data-dir <dir>', 'state directory (default ~/.local/share/coffer/kbs)')
  .option('--store <type>', 'resource store: fs, sealed, postgres or memory')
  .option('--admin-key <file>', 'admin public key PEM allowed to call the admin API (repeatable)', collect)
  .option('--policy <file>', 'resource policy to install if none is set')
  .option('--token-key <file>', 'ES256 private key signing tokens (share it between replicas)')
  .option('--allow-sample', 'accept the sample TEE, which proves nothing (tests and demos only)')
  .option('-q, --quiet', 'log warnings and errors only')
  .option('--json', 'print {"listening": URL} once ready')
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsServeCommand(opts, ctx)),
  )

kbsClientFlags(
  kbs
    .command('apply-manifest')
    .description(
      'Apply a workload manifest: workloads named by what they run, the resources each may get, and secrets the KBS generates that no administrator sees (admin API).',
    )
    .argument('<file>', 'manifest JSON (see docs/kbs.md)')
    .addHelpText(
      'after',
      `
Example manifest:
  {"version": "coffer.dev/kbs-manifest/v1",
   "workloads": {"web": {"tee": "tpm", "claims": {"pcrs.11": ["9f86..."]},
                         "resources": ["default/key/web"]}},
   "secrets": {"default/key/web": {"type": "symmetric-key", "bits": 256}}}
It replaces the resource policy; generated secrets are never replaced or shown.`,
    ),
  true,
).action((file: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsApplyManifestCommand(file, opts, ctx)),
)

kbsClientFlags(
  kbs.command('get-manifest').description('Print the applied workload manifest (admin API).'),
  true,
).action((opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsGetManifestCommand(opts, ctx)),
)

kbs
  .command('master-key')
  .description('Create the master key of the sealed store (32 random bytes, mode 0600; never overwrites).')
  .requiredOption('--out <file>', 'where to write it, e.g. DATA_DIR/master.key')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output')
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsMasterKeyCommand(opts, ctx)),
  )

kbsClientFlags(
  kbs
    .command('get-resource')
    .description(
      'Attest to the KBS as this guest and fetch a resource (stdout, or --out FILE with mode 0600).',
    )
    .argument('<uri>', 'kbs:///repository/type/tag')
    .option(
      '--attester <name>',
      'tpm, snp, tdx or sample (default: detect the TEE; never falls back to sample)',
    )
    .option('--attester-opt <key=value>', 'attester setting, e.g. tcti=swtpm:port=2321 (repeatable)', collect)
    .option('--out <file>', 'write the resource here (mode 0600) instead of stdout')
    .option('--force', 'overwrite --out'),
  false,
).action((uri: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsGetResourceCommand(uri, opts, ctx)),
)

kbsClientFlags(
  kbs
    .command('put-resource')
    .description('Store a resource (admin API).')
    .argument('<uri>', 'kbs:///repository/type/tag')
    .requiredOption('--file <file>', 'the resource bytes ("-" for stdin)'),
  true,
).action((uri: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsPutResourceCommand(uri, opts, ctx)),
)

kbsClientFlags(
  kbs
    .command('delete-resource')
    .description('Delete a resource (admin API).')
    .argument('<uri>', 'kbs:///repository/type/tag'),
  true,
).action((uri: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsDeleteResourceCommand(uri, opts, ctx)),
)

kbsClientFlags(
  kbs.command('list-resources').description('List resource names, never values (admin API).'),
  true,
).action((opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsListResourcesCommand(opts, ctx)),
)

kbsClientFlags(
  kbs
    .command('set-policy')
    .description(
      'Set the resource policy: JSON rules with CEL conditions, checked locally first (admin API).',
    )
    .argument('<file>', 'policy document (see docs/kbs.md)')
    .addHelpText(
      'after',
      `
Example policy (deny wins; no matching allow means deny):
  {"version": "coffer.dev/kbs-resource-policy/v1",
   "rules": [{"effect": "allow", "resources": ["default/key/*"],
              "when": "tee == \\"tpm\\" && status == \\"affirming\\""}]}`,
    ),
  true,
).action((file: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsSetPolicyCommand(file, opts, ctx)),
)

kbsClientFlags(kbs.command('get-policy').description('Print the resource policy (admin API).'), true).action(
  (opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsGetPolicyCommand(opts, ctx)),
)

kbsClientFlags(
  kbs
    .command('set-reference-values')
    .description('Set reference values verifiers compare evidence with (admin API).')
    .argument(
      '<file>',
      'JSON {"<name>": ["value", ...]}, e.g. {"tpm.pcr11": ["ab12..."], "snp.measurement": [...]}',
    ),
  true,
).action((file: string, opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/kbs.js')).kbsSetReferenceValuesCommand(file, opts, ctx)),
)
const fsCmd = program
  .command('fs')
  .description("Encrypted storage volumes in the gocryptfs v2 format (mountable with Debian's gocryptfs).")
  .addHelpText(
    'after',
    `
A passphrase file is read as gocryptfs -passfile reads it: its first line, without the newline.

Examples:
  coffer fs init ./vol --passphrase-file pass.txt
  gocryptfs -passfile pass.txt ./vol /mnt/plain      # the same volume through FUSE
  coffer fs fsck ./vol --passphrase-file pass.txt`,
  )

/** The subcommands of `coffer fs` share their shape: BACKING, output flags, a lazy-loaded action. */
function fsSubcommand(
  name: 'init' | 'info' | 'fsck' | 'passwd',
  description: string,
  examples: string,
  action: 'fsInitCommand' | 'fsInfoCommand' | 'fsFsckCommand' | 'fsPasswdCommand',
): Command {
  return fsCmd
    .command(name)
    .description(description)
    .argument('<backing>', "the volume's backing directory (where gocryptfs.conf lives)")
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nExamples:\n${examples}`)
    .action((backing: string, opts: Record<string, unknown>) =>
      run(opts, async (ctx) => (await import('./commands/fs.js'))[action](backing, opts, ctx)),
    )
}

fsSubcommand(
  'init',
  'Create a volume in an empty (or new) directory: gocryptfs.conf with the scrypt-wrapped master key, and the root diriv.',
  `  coffer fs init ./vol --passphrase-file pass.txt
  coffer fs init ./vol --passphrase-file pass.txt --scryptn 18 --json`,
  'fsInitCommand',
)
  .option('--passphrase-file <file>', 'passphrase (first line of the file)')
  .option(
    '--key <kbs-uri>',
    'instead: kbs:///repo/type/tag whose value is the passphrase (after attestation)',
  )
  .option('--kbs-url <url>', 'with --key: the KBS (default: $COFFER_KBS_URL or http://127.0.0.1:8080)')
  .option('--attester <name>', 'with --key: tpm, snp, tdx or sample (default: detect the TEE)')
  .option('--attester-opt <key=value>', 'with --key: attester setting (repeatable)', collect)
  .addOption(
    new Option('--kbs-tls-verify', 'verify the KBS TLS certificate (--kbs-tls-verify=false to skip)'),
  )
  .addOption(new Option('--no-kbs-tls-verify').hideHelp())
  .option('--scryptn <log2N>', 'scrypt cost as log2(N), as gocryptfs -scryptn (default 16)')
fsSubcommand(
  'info',
  "Show a volume's gocryptfs.conf (creator, feature flags, scrypt cost); needs no passphrase.",
  `  coffer fs info ./vol
  coffer fs info --json ./vol | jq .featureFlags`,
  'fsInfoCommand',
)
fsSubcommand(
  'fsck',
  'Check every name, directory IV, file block and symlink of a volume; exit 9 if anything fails authentication.',
  `  coffer fs fsck ./vol --passphrase-file pass.txt
  coffer fs fsck --json ./vol --passphrase-file pass.txt | jq .problems`,
  'fsFsckCommand',
).requiredOption('--passphrase-file <file>', 'passphrase (first line of the file)')
fsSubcommand(
  'passwd',
  "Change a volume's passphrase: re-wrap the master key with a fresh salt; contents are untouched.",
  '  coffer fs passwd ./vol --passphrase-file old.txt --new-passphrase-file new.txt',
  'fsPasswdCommand',
)
  .requiredOption('--passphrase-file <file>', 'current passphrase (first line of the file)')
  .requiredOption('--new-passphrase-file <file>', 'new passphrase (first line of the file)')
  .option('--scryptn <log2N>', 'new scrypt cost as log2(N) (default: keep the current one)')

/** The guest's pull flags, shared by `coffer pull` and `coffer image-service serve`. */
function guestPullFlags(cmd: Command): Command {
  return cmd
    .option(
      '--store <dir>',
      'layer store (default: /var/lib/coffer/image as root, else ~/.local/share/coffer/image)',
    )
    .option('--policy <file|kbs:///…>', 'containers-policy.json, checked before any layer is fetched')
    .option('--insecure-policy', "accept any image without checking signatures (skopeo's flag)")
    .option('--registries.d <dir>', 'registries.d: lookaside locations and sigstore attachments')
    .option('--decryption-key <file[:password]>', 'private key for encrypted layers (repeatable)', collect)
    .option('--config <file>', 'image service config (TOML): KBS, policy, auth, limits; flags override it')
    .option('--kbs-url <url>', 'attest to this KBS for kbs:/// policies, keys and layer KEKs')
    .option('--attester <name>', 'tpm, snp, tdx or sample (default: detect; never falls back to sample)')
    .option('--attester-opt <key=value>', 'attester setting (repeatable)', collect)
    .addOption(new Option('--no-kbs-tls-verify').hideHelp())
    .option('--platform <os/arch[/variant]>', 'image to pick from an index (default: this machine)')
    .addOption(
      new Option('--rootfs-mode <mode>', 'auto (overlay when possible) or materialize')
        .choices(['auto', 'materialize'])
        .default('auto'),
    )
    .option('--concurrency <n>', 'layers fetched at once (default: one per CPU core, at most 3)')
}

const pull = guestPullFlags(
  program
    .command('pull')
    .description(
      'Pull an image as a guest: check its signatures first, fetch, decrypt and verify every layer, unpack into a layer store and build a rootfs.',
    )
    .argument('<image>', 'docker://REFERENCE or oci:DIR[:TAG]')
    .requiredOption(
      '--rootfs <dir>',
      'where the rootfs goes (DIR/rootfs; an overlay mount when root and overlayfs allow)',
    ),
)
registryFlags(pull, '', 'image')
commonFlags(pull, false)
  .addHelpText(
    'after',
    `
Examples:
  coffer pull --policy policy.json --decryption-key app.key --rootfs /run/app docker://registry.example/app:1.0
  coffer pull --kbs-url https://kbs:8080 --attester tpm --policy kbs:///default/security-policy/app \\
      --rootfs /run/app docker://registry.example/app:enc
  coffer pull --config /etc/coffer/image.toml --rootfs /run/app docker://registry.example/app:enc`,
  )
  .action((image: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/pull.js')).pullCommand(image, opts, ctx)),
  )

program
  .command('mount')
  .description(
    'Mount an encrypted volume (gocryptfs v2 format) with FUSE and serve it in the foreground until SIGINT/SIGTERM or coffer umount.',
  )
  .argument('[mountpoint]', 'an existing empty directory')
  .option(
    '--ephemeral',
    'a fresh volume with a random key held only in memory; its data is removed at unmount',
  )
  .option(
    '--backing <dir>',
    'with --ephemeral: where the ciphertext goes (empty or new; default: a temp dir)',
  )
  .option('--volume <backing>', "a persistent volume's backing directory (gocryptfs.conf)")
  .option('--passphrase-file <file>', 'with --volume: passphrase (first line of the file)')
  .option(
    '--key <kbs-uri>',
    'with --volume: kbs:///repo/type/tag whose value is the passphrase (after attestation)',
  )
  .option('--kbs-url <url>', 'with --key: the KBS (default: $COFFER_KBS_URL or http://127.0.0.1:8080)')
  .option('--attester <name>', 'with --key: tpm, snp, tdx or sample (default: detect the TEE)')
  .option('--attester-opt <key=value>', 'with --key: attester setting (repeatable)', collect)
  .addOption(
    new Option('--kbs-tls-verify', 'verify the KBS TLS certificate (--kbs-tls-verify=false to skip)'),
  )
  .addOption(new Option('--no-kbs-tls-verify').hideHelp())
  .option('--list', 'list coffer mounts (from the state directory) and whether they are stale')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output: {"mounted": …} once serving, {"unmounted": …} at the end')
  .addHelpText(
    'after',
    `
Runs in the foreground like gocryptfs -f (use systemd, a container or & to background it).
State: $COFFER_MOUNT_STATE_DIR, $XDG_RUNTIME_DIR/coffer/mounts or /run/coffer/mounts.

Examples:
  coffer mount --ephemeral /mnt/scratch
  coffer mount --volume ./vol /mnt/data --passphrase-file pass.txt
  coffer mount --volume ./vol /mnt/data --key kbs:///default/volume/data --kbs-url http://kbs:8080
  coffer mount --list
  coffer umount /mnt/data`,
  )
  .action((mountpoint: string | undefined, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/mount.js')).mountCommand(mountpoint, opts, ctx)),
  )

program
  .command('umount')
  .description('Unmount a coffer mount: its serving process unmounts, wipes its keys and exits.')
  .argument('<mountpoint>', 'where it is mounted')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output')
  .action((mountpoint: string, opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/mount.js')).umountCommand(mountpoint, opts, ctx)),
  )

const imageService = program
  .command('image-service')
  .description(
    'The in-guest image service: a daemon with a CRI-like gRPC API on a unix socket, and its client commands.',
  )
const serveImages = guestPullFlags(
  imageService
    .command('serve')
    .description('Serve PullImage, ImageStatus, ListImages and RemoveImage on --socket until SIGINT/SIGTERM.')
    .option('--socket <path>', 'unix socket (default /run/coffer/image-service.sock)')
    .option('--work-dir <dir>', 'rootfs trees and the reference index (default: the config work_dir)'),
)
registryFlags(serveImages, '', 'image')
commonFlags(serveImages, false).action((opts: Record<string, unknown>) =>
  run(opts, async (ctx) => (await import('./commands/image-service.js')).imageServiceServeCommand(opts, ctx)),
)
for (const [name, description, hasImage] of [
  ['pull', "Ask the service to pull an image (policy, keys and limits are the service's).", true],
  ['status', 'Show a pulled image.', true],
  [
    'remove',
    'Forget an image (through the service, or with --store in a store coffer pull wrote); its layers go at the next gc unless another image uses them.',
    true,
  ],
  ['list', 'List pulled images (through the service, or with --store the records in a store).', false],
] as const) {
  const cmd = imageService.command(name).description(description)
  if (hasImage)
    cmd.argument(
      '<image>',
      name === 'remove'
        ? 'REFERENCE (HOST/REPO:TAG), docker://…, or with --store an image digest sha256:…'
        : 'REFERENCE (HOST/REPO:TAG) or docker://…',
    )
  cmd
    .option('--socket <path>', 'the service socket (default /run/coffer/image-service.sock)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'machine-readable output')
  if (name === 'pull') cmd.option('--platform <os/arch[/variant]>', 'image to pick from an index')
  if (name === 'remove' || name === 'list')
    cmd.option(
      '--store <dir>',
      "work on this layer store's image records directly, without the service (images coffer pull stored)",
    )
  cmd.action((...args: unknown[]) => {
    const opts = args[hasImage ? 1 : 0] as Record<string, unknown>
    return run(opts, async (ctx) => {
      const m = await import('./commands/image-service.js')
      if (name === 'pull') return m.imageServicePullCommand(args[0] as string, opts, ctx)
      if (name === 'status') return m.imageServiceStatusCommand(args[0] as string, opts, ctx)
      if (name === 'remove') return m.imageServiceRemoveCommand(args[0] as string, opts, ctx)
      return m.imageServiceListCommand(opts, ctx)
    })
  })
}
imageService
  .command('gc')
  .description(
    'Delete stored layers no pulled image uses; waits for pulls using the store (coffer pull or the service) to finish.',
  )
  .requiredOption('--store <dir>', 'the layer store')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output')
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/image-service.js')).imageServiceGcCommand(opts, ctx)),
  )

const csi = program
  .command('csi')
  .description('Kubernetes CSI driver for coffer encrypted volumes (see docs/kubernetes.md).')
csi
  .command('serve')
  .description(
    'Serve the CSI Identity, Node and minimal Controller services on a unix socket; each volume is a coffer mount child process.',
  )
  .option(
    '--endpoint <unix:///path.sock>',
    'where to listen (default: $CSI_ENDPOINT or unix:///csi/csi.sock)',
  )
  .option('--node-id <id>', "this node's ID, e.g. the Kubernetes node name (default: $CSI_NODE_ID)")
  .option('--state-dir <dir>', 'persistent volumes and mount records', '/var/lib/coffer/csi')
  .option(
    '--passphrase-file <file>',
    'node-wide passphrase for volumes whose StorageClass names no keyUri (first line of the file)',
  )
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output: {"listening": SOCKET, ...} once serving')
  .addHelpText(
    'after',
    `
StorageClass parameters: keyUri=kbs:///repo/type/tag (the volume's passphrase, fetched after
attestation), kbsUrl, attester. Inline ephemeral volumes get a random key that never leaves memory.

Examples:
  coffer csi serve --endpoint unix:///csi/csi.sock --node-id "$NODE_NAME"
  coffer csi serve --endpoint unix:///run/coffer/csi.sock --node-id n1 --state-dir /var/lib/coffer/csi \
      --passphrase-file /etc/coffer/node-passphrase`,
  )
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/csi.js')).csiServeCommand(opts, ctx)),
  )

program
  .command('demo')
  .description(
    'Run the end-to-end demo on embedded defaults: build, encrypt, sign and push an image; attest, pull and unpack it as a guest; write to an encrypted volume.',
  )
  .option(
    '--attester <name>',
    'auto (a software TPM if swtpm and tpm2-tools are installed, else sample), tpm or sample',
    'auto',
  )
  .option(
    '--keep',
    'keep the temporary work directory (keys, layouts, rootfs, KBS log) and print where it is',
  )
  .option('--workdir <dir>', 'work in this directory (new or empty) instead of a temporary one, and keep it')
  .option('-q, --quiet', 'print nothing but errors')
  .option(
    '--json',
    'machine-readable output: one JSON object per step ({"step", "ok", "ms", ...}), the result, a summary',
  )
  .addHelpText(
    'after',
    `
What it does, each step timed:
  as the image builder and KBS operator
    builds a two-layer sample image; starts a local registry (docker-registry) and pushes it;
    generates keys; starts a local KBS (coffer kbs serve) holding the image's key-encryption key,
    the cosign public key and the guest's signature policy; encrypts the image for
    kbs:///demo/image-kek/sample (ocicrypt format), pushes it and signs it with cosign
  as the guest, in its TEE
    attests: with --attester auto a software TPM (swtpm) gets an attestation key and a measured
    PCR 11, and the KBS is told to trust exactly those; without swtpm and tpm2-tools the sample
    attester is used, which proves nothing and says so; then pulls like coffer pull: policy from
    the KBS, signature verified before any layer is fetched, layers decrypted with the key the KBS
    released, unpacked into a rootfs that is compared with the sample image; mounts an encrypted
    ephemeral volume (coffer mount --ephemeral, in a child process), writes a file, shows that the
    backing directory holds only ciphertext, reads it back and unmounts

Everything the demo starts is stopped and unmounted at the end, also on an error or Ctrl-C.
Needs docker-registry and FUSE (/dev/fuse); scripts/install-system-deps.sh installs what is missing.

Examples:
  coffer demo
  coffer demo --keep --attester sample
  coffer demo --json | jq -c 'select(.step) | {step, ms}'`,
  )
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/demo.js')).demoCommand(opts, ctx)),
  )

program.parseAsync(normalizeBoolFlags(process.argv)).catch((err: unknown) => {
  // Commander usage errors arrive here only when exitOverride is set; anything else is a bug.
  console.error(err)
  process.exit(1)
})
