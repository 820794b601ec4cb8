import type { CofferErrorCode } from './errors.js'

/**
 * What a user can do about each error code: the fix that goes with the cause in the message.
 * The message says what went wrong with this input (which file, which layer, which key); the
 * hint says what to change, in terms of flags and commands that exist. The CLI prints it under
 * the message, `--json` carries it as `hint`, and a test keeps one for every code (so a new code
 * cannot ship without one). A CofferError can carry a more specific hint of its own.
 */
export const ERROR_HINTS: Record<CofferErrorCode, string> = {
  // generic
  ERR_INVALID_ARGUMENT: 'check the value named above; `coffer <command> --help` lists what each flag accepts',
  ERR_USAGE: 'see `coffer <command> --help` for the flags and their combinations',
  ERR_NOT_FOUND: 'check the path or name above; it does not exist (or is not readable by this user)',
  ERR_CANCELED: 'the command was interrupted; run it again (partial output was removed)',
  ERR_INTERNAL: 'this is a bug in coffer: please report it with the command line and this output',
  ERR_TOO_LARGE:
    'the input exceeds a safety limit; if it is legitimate, split it or raise the limit named above',
  ERR_CONFIG_INVALID:
    'fix the configuration file at the place named above; docs/reference.md lists every field',
  ERR_PLUGIN_DUPLICATE: 'two plugins register the same name; remove one of them',
  ERR_PLUGIN_NOT_FOUND:
    'use one of the names listed above (plugins are built in; see `coffer <command> --help`)',

  // references and image formats
  ERR_OCI_REFERENCE_INVALID:
    'write the image as oci:DIR[:TAG] or docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] (lower-case repository)',
  ERR_OCI_TRANSPORT_UNKNOWN: 'coffer reads oci:DIR[:TAG] and docker://HOST/REPO[:TAG] (skopeo’s names)',
  ERR_OCI_DIGEST_INVALID: 'a digest is sha256:<64 hex digits> (or sha512:<128>)',
  ERR_OCI_DIGEST_MISMATCH:
    'the content does not match its digest: the source is corrupt or was tampered with; nothing was written — copy from a trusted source again',
  ERR_OCI_SIZE_MISMATCH:
    'the content’s size differs from its descriptor: the source is corrupt or was tampered with; nothing was written',
  ERR_OCI_MANIFEST_TOO_LARGE:
    'manifests are limited to 4 MiB, as in containers/image; this one is not a real image',
  ERR_OCI_MANIFEST_INVALID:
    'the manifest does not follow the OCI or Docker v2 schema; rebuild or re-push the image',
  ERR_OCI_MEDIA_TYPE_UNKNOWN:
    'coffer handles OCI and Docker v2 schema 2 images and their layers; convert this one with a builder that writes those',
  ERR_OCI_SCHEMA1_UNSUPPORTED:
    'Docker schema 1 is deprecated and unsigned; re-push the image with a current Docker or buildah (schema 2)',
  ERR_OCI_PLATFORM_INVALID: 'write the platform as os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8',
  ERR_OCI_PLATFORM_NOT_FOUND:
    'pick a platform the index lists (`coffer inspect --raw IMAGE`), or copy them all with --all',
  ERR_OCI_OUT_OF_ORDER: 'retry the command; if it persists, report it as a bug',
  ERR_OCI_LAYER_INVALID:
    'the layer is not a valid (compressed) tar; the image is corrupt: rebuild or re-copy it',
  ERR_OCI_LAYOUT_INVALID:
    'the directory is not an OCI image layout (oci-layout, index.json, blobs/); point at the layout root or create it with `coffer copy`',
  ERR_OCI_LAYOUT_NOT_FOUND: 'check the oci:DIR path; the directory does not exist',
  ERR_OCI_TAG_NOT_FOUND:
    'use a tag the layout has (`coffer inspect oci:DIR` lists them) or write oci:DIR:TAG',
  ERR_OCI_TAG_AMBIGUOUS: 'the layout holds several images: name one as oci:DIR:TAG',
  ERR_OCI_BLOB_NOT_FOUND: 'the layout is incomplete (a blob is missing): copy the image into it again',

  // registries
  ERR_REGISTRY_UNREACHABLE:
    'check the host and port, that the registry runs, and for a plain-HTTP or self-signed registry add --tls-verify=false (--src-tls-verify=false or --dest-tls-verify=false for copy)',
  ERR_REGISTRY_UNAUTHORIZED:
    'log in: --creds USER:PASSWORD (--src-creds/--dest-creds for copy) or an auth.json via --authfile / REGISTRY_AUTH_FILE',
  ERR_REGISTRY_DENIED:
    'the credentials are valid but lack access to this repository: ask its owner for pull/push rights',
  ERR_REGISTRY_NOT_FOUND:
    'check the repository, tag or digest (`coffer list-tags docker://HOST/REPO` lists tags)',
  ERR_REGISTRY_RATE_LIMITED:
    'the registry throttles you: wait and retry, log in, or use a mirror (--registries-conf)',
  ERR_REGISTRY_PROTOCOL:
    'the server did not answer as a Docker/OCI distribution registry; check the host and port point at a registry',
  ERR_REGISTRY_SERVER:
    'the registry failed (5xx) after retries: retry later, raise --retry-times, or use a mirror',
  ERR_REGISTRY_TLS:
    'the TLS handshake failed: trust the registry’s CA (NODE_EXTRA_CA_CERTS=ca.pem), or for a test registry use --tls-verify=false',
  ERR_AUTH_FILE_INVALID:
    'fix the auth.json named above: {"auths": {"HOST": {"auth": "base64(user:password)"}}}',
  ERR_REGISTRIES_CONF_INVALID:
    'fix registries.conf at the place named above (containers-registries.conf(5) format)',
  ERR_REGISTRY_BLOCKED:
    'registries.conf marks this registry blocked; use another registry or change that file',
  ERR_AUTH_HELPER_FAILED:
    'the docker credential helper named in auth.json failed: run it by hand to see why, or give --creds instead',

  // layer encryption
  ERR_CRYPT_DECRYPT_FAILED:
    'the layer failed authentication or no key opened it: use the matching private key (--decryption-key); if the key is right the image was tampered with — nothing was written',
  ERR_CRYPT_NO_KEY:
    'the image is encrypted: give --decryption-key FILE (the private key of one recipient `coffer inspect` lists) or --kbs-url for kbs:/// keys',
  ERR_CRYPT_KEY_INVALID:
    'the key file is not a usable key: PEM or DER private/public keys, x509 certificates, OpenPGP keys; generate one with `coffer keys generate`',
  ERR_CRYPT_OPTIONS_INVALID:
    'the layer’s encryption annotations are malformed: the image is corrupt or was tampered with',
  ERR_CRYPT_UNSUPPORTED:
    'use a supported scheme: jwe:, pkcs7:, pgp:, provider:NAME or kbs:///repo/type/tag (see `coffer encrypt --help`)',
  ERR_CRYPT_RECIPIENT_INVALID:
    'write a recipient as jwe:PUB.pem, pkcs7:CERT.pem, pgp:KEY.asc, provider:NAME[:params] or kbs:///repo/type/tag',
  ERR_CRYPT_WORKER_FAILED:
    'a crypto worker thread died (often: out of memory); nothing was written. Run the command again; if it repeats, report it with this output',
  ERR_CRYPT_PROVIDER_TIMEOUT:
    'the key provider did not answer in time: check that it runs and answers on the command or address in OCICRYPT_KEYPROVIDER_CONFIG',
  ERR_CRYPT_PROVIDER_FAILED: 'the key provider failed; run it by hand to see its error',
  ERR_CRYPT_PROVIDER_PROTOCOL:
    'the key provider’s answer is not the ocicrypt keyprovider protocol; check its version',
  ERR_CRYPT_PROVIDER_REQUEST_INVALID:
    'the key provider request is malformed; check the client speaks the ocicrypt keyprovider protocol',

  // signatures and trust policy
  ERR_SIGN_POLICY_INVALID:
    'fix the policy.json at the place named above (containers-policy.json(5)); `coffer verify --help` shows an example',
  ERR_SIGN_POLICY_DENIED:
    'the trust policy refuses this image: sign it with a key the policy trusts (`coffer sign`), or change the policy’s scope for it',
  ERR_SIGN_SIGNATURE_INVALID:
    'no signature verifies with the trusted key for this exact image: sign it again with the right key, or check --key / the policy’s keyPath',
  ERR_SIGN_KEY_INVALID:
    'the key is not a cosign key or OpenPGP key; generate one with `coffer keys generate --type cosign`',
  ERR_SIGN_KEY_PASSWORD:
    'wrong key password: set COSIGN_PASSWORD (cosign keys) or --sign-passphrase-file (GPG keys)',
  ERR_SIGN_UNSUPPORTED:
    'coffer verifies cosign key-based and simple (GPG) signatures; keyless (Fulcio/Rekor) and pki requirements are not supported',
  ERR_SIGN_REGISTRIES_D_INVALID: 'fix the registries.d YAML file named above (containers-registries.d(5))',
  ERR_SIGN_STORAGE:
    'the signature store (lookaside or registry) could not be read or written; check registries.d and the registry’s reachability',
  ERR_SIGN_TOO_MANY:
    'the image has more signatures than coffer reads (a defence against flooding); remove stale ones',

  // attestation
  ERR_ATTEST_EVIDENCE_INVALID:
    'the TEE evidence is malformed: check the attester and its version match the verifier',
  ERR_ATTEST_VERIFICATION_FAILED:
    'the evidence did not verify or does not match the reference values: register the guest’s values (`coffer kbs set-reference-values`) or fix the guest',
  ERR_ATTEST_REPORT_DATA_MISMATCH:
    'the evidence is not bound to this session (replayed or wrong nonce): restart the attestation from `auth`',
  ERR_ATTEST_TEE_UNSUPPORTED:
    'use a TEE the KBS has a verifier for: tpm, snp, tdx (sample only with --allow-sample)',
  ERR_ATTEST_NO_TEE:
    'no TEE was detected here: run inside a TDX/SNP guest or with a TPM, or name one with --attester (sample is for tests and proves nothing)',
  ERR_ATTEST_SAMPLE_DISABLED:
    'the KBS refuses the sample attester: use a real one, or start a test KBS with `coffer kbs serve --allow-sample`',
  ERR_ATTEST_DEVICE_FAILED:
    'the TEE device could not produce evidence: check the device (e.g. /dev/tpmrm0, configfs tsm) exists and is accessible to this user',
  ERR_ATTEST_REFERENCE_VALUES_INVALID:
    'fix the reference-values file named above (docs/kbs.md shows its format)',

  // key broker
  ERR_KBS_RESOURCE_URI_INVALID: 'write a KBS resource as kbs:///REPO/TYPE/TAG (three non-empty parts, no ..)',
  ERR_KBS_STORE_UNAVAILABLE:
    'the KBS store (files or PostgreSQL) is unreachable: check --data-dir or the database URL, then retry',
  ERR_KBS_STORE_KEY_INVALID:
    'resource names are kbs:///REPO/TYPE/TAG with letters, digits, ., _ and - in each part',
  ERR_KBS_STORE_CORRUPT:
    'a stored resource failed its integrity check: restore it from a backup or set it again',
  ERR_KBS_POLICY_INVALID:
    'fix the resource policy (JSON with version coffer.dev/kbs-resource-policy/v1 and CEL rules; docs/kbs.md)',
  ERR_KBS_CONFIG_INVALID:
    'fix the KBS TOML configuration at the place named above (docs/kbs.md lists every field)',
  ERR_KBS_PROTOCOL:
    'the peer does not speak KBS protocol 0.4.0 as trustee does; check the URL points at a KBS and versions match',
  ERR_KBS_UNAUTHORIZED:
    'the token or admin key was refused: attest again (client), or sign admin requests with the key given to `kbs serve --admin-key`',
  ERR_KBS_DENIED:
    'the resource policy does not release this resource to this guest: check `coffer kbs get-policy` and the guest’s attested claims',
  ERR_KBS_RESOURCE_NOT_FOUND:
    'no such resource: register it with `coffer kbs put-resource kbs:///REPO/TYPE/TAG --file FILE`',
  ERR_KBS_UNREACHABLE:
    'check --kbs-url (or $COFFER_KBS_URL) and that the KBS runs; `coffer kbs serve` starts one',
  ERR_KBS_ADMIN_KEY_INVALID:
    'admin keys are Ed25519 or P-256 PEM files: the public key for `kbs serve --admin-key`, the unencrypted private key for the admin commands (`openssl genpkey -algorithm ed25519`)',
  ERR_KBS_STORE_MASTER_KEY_INVALID:
    'the store master key must be 32 bytes; create it with `coffer kbs master-key`',

  // image service and layer store
  ERR_IMAGE_SERVICE_UNAVAILABLE:
    'start the daemon (`coffer image-service serve --socket PATH`) or point --socket at the running one',
  ERR_IMAGE_NOT_FOUND:
    'pull the image first (`coffer image-service pull`), or list what is there with `coffer image-service list`',
  ERR_IMAGE_UNSAFE_PATH:
    'the layer tries to write outside the rootfs (.., absolute path or through a symlink): the image is malicious or broken; nothing was committed',
  ERR_IMAGE_TAR_INVALID: 'the layer is not a valid tar archive: the image is corrupt; nothing was committed',
  ERR_IMAGE_HARDLINK_INVALID:
    'a hard link in the layer points outside it or at a missing file: the image is broken or malicious',
  ERR_IMAGE_LAYER_TOO_LARGE:
    'the layer exceeds the configured unpack limits; raise them in the image service config if legitimate',
  ERR_IMAGE_DIFF_ID_MISMATCH:
    'the unpacked layer does not match the image config’s diff_id: the image was tampered with or built wrongly; nothing was committed',
  ERR_IMAGE_LAYER_NOT_FOUND: 'the layer store lacks a layer: pull the image again',
  ERR_IMAGE_STORE_CORRUPT:
    'the layer store failed a check: run `coffer image-service gc`, or remove the store and pull again',
  ERR_IMAGE_ROOTFS_FAILED:
    'the rootfs could not be assembled: check the --rootfs directory is empty and writable; use --rootfs-mode materialize where overlayfs is unavailable',

  ERR_IMAGE_ROOTFS_EXISTS:
    'the --rootfs directory already holds a rootfs: pick another directory, or unmount and remove the old one first',
  ERR_IMAGE_WORKER_FAILED:
    'a layer worker thread died (often: out of memory); the layer was not committed. Pull again; if it repeats, report it with this output',

  // encrypted storage
  ERR_STORAGE_NOT_A_VOLUME:
    'the directory has no gocryptfs.conf: create a volume with `coffer fs init DIR --passphrase-file F`',
  ERR_STORAGE_VOLUME_EXISTS:
    'the directory already holds a volume (or is not empty); pick an empty directory',
  ERR_STORAGE_CONFIG_INVALID:
    'gocryptfs.conf is malformed: restore it from a backup (the master key is in it)',
  ERR_STORAGE_FEATURE_UNSUPPORTED:
    'the volume uses a gocryptfs feature coffer does not implement (see docs/storage.md); open it with gocryptfs',
  ERR_STORAGE_WRONG_PASSPHRASE:
    'the passphrase does not open this volume: check the file or KBS resource (first line is used)',
  ERR_STORAGE_PASSPHRASE_EMPTY:
    'the passphrase is empty: put it on the first line of the file or KBS resource',
  ERR_STORAGE_CORRUPT:
    'a block or name failed authentication: the backing directory was changed outside coffer; `coffer fs fsck` lists what is damaged',
  ERR_STORAGE_NAME_INVALID: 'file names cannot be empty, ".", ".." or contain "/" or NUL',
  ERR_STORAGE_NAME_TOO_LONG: 'file names are limited to 255 bytes',
  ERR_STORAGE_FSCK_FAILED: 'fsck found damaged files (listed above): restore them from a backup',
  ERR_STORAGE_MOUNT_FAILED:
    'the FUSE mount failed: check /dev/fuse exists, the fuse package is installed, and the mount point is an empty directory',
  ERR_STORAGE_MOUNTPOINT_BUSY:
    'something is already mounted there: `coffer umount MOUNTPOINT` or pick another directory',
  ERR_STORAGE_NOT_MOUNTED: 'nothing coffer mounted is there; `coffer mount --list` shows the mounts',
  ERR_STORAGE_UNMOUNT_FAILED:
    'the mount is busy: close files and leave directories under it, then `coffer umount` again (fusermount -u -z detaches lazily)',

  // CSI driver
  ERR_CSI_ARGUMENT_MISSING:
    'the CSI request lacks a required field: this is a caller (kubelet or sidecar) problem',
  ERR_CSI_ARGUMENT_INVALID:
    'fix the volume attributes in the StorageClass or Pod (docs/kubernetes.md lists them)',
  ERR_CSI_CAPABILITY_UNSUPPORTED:
    'coffer volumes are filesystem volumes, single-node writer; use those access modes',
  ERR_CSI_VOLUME_NOT_FOUND: 'the volume is not known to this node; check it was staged here',
  ERR_CSI_VOLUME_CONFLICT: 'a volume with this name exists with other parameters; pick another name',
  ERR_CSI_NOT_STAGED: 'NodeStageVolume must succeed before NodePublishVolume; check the kubelet events',
  ERR_CSI_CAPABILITY_EXCEEDED: 'the requested size or mode exceeds what the driver offers',
  ERR_CSI_VOLUME_IN_USE: 'the volume is still published to a target: unpublish it first',
  ERR_CSI_ENDPOINT_INVALID: 'give the endpoint as unix:///path/to/csi.sock',
  ERR_CSI_MOUNT_FAILED:
    'the node could not mount the volume: see the driver’s log for the coffer mount error',
  ERR_CSI_KEY_NOT_FOUND:
    'register the volume’s passphrase in the KBS under the keyUri given in the StorageClass',
  ERR_CSI_KEY_DENIED:
    'the KBS resource policy does not release this volume key to this node; check the policy',
  ERR_CSI_KEY_UNAVAILABLE:
    'the KBS is unreachable from the node; check the driver’s --kbs-url and the network',
  ERR_CSI_STATE_CORRUPT:
    'the driver’s state file is damaged; unmount the volumes and remove the state directory',
}

export function hintFor(code: CofferErrorCode): string {
  return ERROR_HINTS[code]
}
