/*
 * AES-256-GCM over runs of gocryptfs content blocks, for lib/storage/content-cipher.ts.
 *
 * Why native: node:crypto needs a new cipher object per block (createDecipheriv, setAAD,
 * setAuthTag, update, final: five calls into C++ and a key expansion), about 10 us per 4 KiB block
 * here, while OpenSSL itself needs about 1 us. A 128 KiB FUSE read is 32 blocks. This file keeps
 * one OpenSSL context per call, expands the key once, and only sets a new IV per block. It uses
 * the OpenSSL that Node itself is linked with (its symbols), so its results are node:crypto's.
 *
 * The format and the decryption loop are in gocryptfs-blocks.h (shared with fuse-bridge.c). The
 * rules are the JS path's, and the tests run both over the same inputs.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "gocryptfs-blocks.h"
#include "napi-args.h"

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* The block number as a JS number: a non-negative integer below 2^53. */
static int get_block_no(napi_env env, napi_value v, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(uint64_t)d) return 0;
  *out = (uint64_t)d;
  return 1;
}

static int overlaps(bytes_t a, bytes_t b) {
  return a.len && b.len && a.data < b.data + b.len && b.data < a.data + a.len;
}

/* The arguments both calls share: key, input, first block number, file ID (or null), ... */
static int common_args(napi_env env, napi_value *argv, bytes_t *key, bytes_t *in, uint64_t *first,
                       bytes_t *file_id) {
  return get_bytes(env, argv[0], key, 0) && key->len == KEY_LEN && get_bytes(env, argv[1], in, 0) &&
         get_block_no(env, argv[2], first) && get_bytes(env, argv[3], file_id, 1) &&
         (file_id->data == NULL || file_id->len == FILE_ID_LEN);
}

/*
 * open(key, stored, firstBlockNo, fileId | null, out) -> number
 * Decrypts consecutive stored blocks into `out` (4096 bytes per block). Returns -1 if every block
 * authenticated, else the index of the first one that did not; `out` then holds unauthenticated
 * bytes and the caller must not use any of it.
 */
static napi_value open_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5)
    return fail(env, "open(key, stored, firstBlockNo, fileId, out)");
  bytes_t key, stored, file_id, out;
  uint64_t first;
  if (!common_args(env, argv, &key, &stored, &first, &file_id) || !get_bytes(env, argv[4], &out, 0))
    return fail(env, "open: bad key, stored blocks, block number, file ID or output");
  if (out.len < plain_length(stored.len)) return fail(env, "open: output buffer too small");
  if (overlaps(stored, out) || overlaps(file_id, out) || overlaps(key, out))
    return fail(env, "open: input and output overlap");

  int64_t failed = open_run(key.data, stored.data, stored.len, first, file_id, out.data);
  if (failed == -2) {
    napi_throw_error(env, "ERR_CRYPTO_OPERATION_FAILED", "open: OpenSSL could not set up AES-256-GCM");
    return NULL;
  }
  napi_value result;
  napi_create_int64(env, failed, &result);
  return result;
}

/*
 * seal(key, plain, firstBlockNo, fileId | null, nonces, out) -> undefined
 * Encrypts `plain` cut every 4096 bytes (the last block may be short) into `out`, laid out as on
 * disk, with nonce i taken from nonces[16 i .. 16 i + 16].
 */
static napi_value seal_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6)
    return fail(env, "seal(key, plain, firstBlockNo, fileId, nonces, out)");
  bytes_t key, plain, file_id, nonces, out;
  uint64_t first;
  if (!common_args(env, argv, &key, &plain, &first, &file_id) || !get_bytes(env, argv[4], &nonces, 0) ||
      !get_bytes(env, argv[5], &out, 0))
    return fail(env, "seal: bad key, plaintext, block number, file ID, nonces or output");
  size_t n = (plain.len + PLAIN_BS - 1) / PLAIN_BS;
  if (nonces.len < n * NONCE_LEN) return fail(env, "seal: too few nonces");
  if (out.len < plain.len + n * OVERHEAD) return fail(env, "seal: output buffer too small");
  if (overlaps(plain, out) || overlaps(nonces, out) || overlaps(file_id, out) || overlaps(key, out))
    return fail(env, "seal: input and output overlap");

  int ok = 1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
       EVP_EncryptInit_ex(ctx, NULL, NULL, key.data, NULL) == 1;
  uint8_t ad[8 + FILE_ID_LEN];
  for (size_t i = 0; ok && i < n; i++) {
    size_t len = plain.len - i * PLAIN_BS < PLAIN_BS ? plain.len - i * PLAIN_BS : PLAIN_BS;
    const uint8_t *nonce = nonces.data + i * NONCE_LEN;
    uint8_t *block = out.data + i * CIPHER_BS;
    size_t ad_len = additional_data(ad, first + i, file_id);
    int outl;
    memcpy(block, nonce, NONCE_LEN);
    ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &outl, ad, (int)ad_len) == 1 &&
         EVP_EncryptUpdate(ctx, block + NONCE_LEN, &outl, plain.data + i * PLAIN_BS, (int)len) == 1 &&
         EVP_EncryptFinal_ex(ctx, block + NONCE_LEN + outl, &outl) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, block + NONCE_LEN + len) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    napi_throw_error(env, "ERR_CRYPTO_OPERATION_FAILED", "seal: OpenSSL AES-256-GCM failed");
    return NULL;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"open", NULL, open_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, seal_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
