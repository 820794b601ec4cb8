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
    cmd.option(
      '--decryption-key <file[:password]>',
      'decrypt layers with this private key (repeatable)',
      collect,
    )
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
    .action((source: string, destination: string, opts: Record<string, unknown>) =>
      run(opts, async (ctx) =>
        (await import('./commands/copy.js')).copyCommand(source, destination, opts, ctx, name),
      ),
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
  coffer decrypt --decryption-key mykey.key:s3cret docker://127.0.0.1:5000/app:enc oci:./plain:app`,
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
registryFlags(program.commands.at(-1)!, '', 'registry')
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
registryFlags(program.commands.at(-1)!, '', 'registry')
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
registryFlags(listTags, '', 'registry')
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

program
  .command('demo')
  .description(
    'Run the end-to-end demo on embedded defaults (needs docker-registry; see scripts/install-system-deps.sh).',
  )
  .option('--workdir <dir>', 'keep the demo files here instead of a temporary directory')
  .option('-q, --quiet', 'print nothing but errors')
  .option('--json', 'machine-readable output: one JSON object per step, then the result')
  .action((opts: Record<string, unknown>) =>
    run(opts, async (ctx) => (await import('./commands/demo.js')).demoCommand(opts, ctx)),
  )

program.parseAsync(normalizeBoolFlags(process.argv)).catch((err: unknown) => {
  // Commander usage errors arrive here only when exitOverride is set; anything else is a bug.
  console.error(err)
  process.exit(1)
})
