/*
 * AES-256-GCM over runs of gocryptfs content blocks, for lib/storage/content-cipher.ts.
 *
 * Why native: node:crypto needs a new cipher object per block (createDecipheriv, setAAD,
 * setAuthTag, update, final: five calls into C++ and a key expansion), about 10 us per 4 KiB block
 * here, while OpenSSL itself needs about 1 us. A 128 KiB FUSE read is 32 blocks. This file keeps
 * one OpenSSL context per call, expands the key once, and only sets a new IV per block. It uses
 * the OpenSSL that Node itself is linked with (its symbols), so its results are node:crypto's.
 *
 * The format (see content-cipher.ts): a stored block is nonce16 || ciphertext || tag16, with
 * additional data u64be(block number) || file ID; a full-size all-zero stored block is a hole and
 * reads as zeros; an all-zero nonce is refused. The rules are the JS path's, and the tests run
 * both over the same inputs.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#define PLAIN_BS 4096
#define NONCE_LEN 16
#define TAG_LEN 16
#define OVERHEAD (NONCE_LEN + TAG_LEN)
#define CIPHER_BS (PLAIN_BS + OVERHEAD)
#define KEY_LEN 32
#define FILE_ID_LEN 16

typedef struct {
  uint8_t *data;
  size_t len;
} bytes_t;

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* A Uint8Array (Buffer) argument; null/undefined gives {NULL, 0} when optional. */
static int get_bytes(napi_env env, napi_value v, bytes_t *out, int optional) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (optional && (t == napi_null || t == napi_undefined)) {
    out->data = NULL;
    out->len = 0;
    return 1;
  }
  bool is_typed;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  out->data = data;
  out->len = length;
  return 1;
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

static size_t additional_data(uint8_t ad[8 + FILE_ID_LEN], uint64_t block_no, bytes_t file_id) {
  for (int i = 7; i >= 0; i--, block_no >>= 8) ad[i] = (uint8_t)block_no;
  if (file_id.data) memcpy(ad + 8, file_id.data, FILE_ID_LEN);
  return 8 + file_id.len;
}

/* Plaintext length of consecutive stored blocks (content-cipher.ts plainLength). */
static size_t plain_length(size_t stored_len) {
  size_t n = (stored_len + CIPHER_BS - 1) / CIPHER_BS;
  if (n == 0) return 0;
  size_t last = stored_len - (n - 1) * CIPHER_BS;
  return (n - 1) * PLAIN_BS + (last > OVERHEAD ? last - OVERHEAD : 0);
}

static int all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
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
  size_t n = (stored.len + CIPHER_BS - 1) / CIPHER_BS;
  if (out.len < plain_length(stored.len)) return fail(env, "open: output buffer too small");
  if (overlaps(stored, out) || overlaps(file_id, out) || overlaps(key, out))
    return fail(env, "open: input and output overlap");

  int64_t failed = -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key.data, NULL) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, "ERR_CRYPTO_OPERATION_FAILED", "open: OpenSSL could not set up AES-256-GCM");
    return NULL;
  }
  uint8_t ad[8 + FILE_ID_LEN];
  for (size_t i = 0; i < n && failed < 0; i++) {
    const uint8_t *block = stored.data + i * CIPHER_BS;
    size_t len = stored.len - i * CIPHER_BS < CIPHER_BS ? stored.len - i * CIPHER_BS : CIPHER_BS;
    uint8_t *plain = out.data + i * PLAIN_BS;
    int outl;
    if (len <= OVERHEAD) {
      failed = (int64_t)i;
    } else if (len == CIPHER_BS && all_zero(block, len)) {
      memset(plain, 0, PLAIN_BS); /* a hole */
    } else if (all_zero(block, NONCE_LEN)) {
      failed = (int64_t)i; /* never written by a sealer, refused by gocryptfs too */
    } else {
      size_t ad_len = additional_data(ad, first + i, file_id);
      if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, block) != 1 ||
          EVP_DecryptUpdate(ctx, NULL, &outl, ad, (int)ad_len) != 1 ||
          EVP_DecryptUpdate(ctx, plain, &outl, block + NONCE_LEN, (int)(len - OVERHEAD)) != 1 ||
          EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(block + len - TAG_LEN)) != 1 ||
          EVP_DecryptFinal_ex(ctx, plain + outl, &outl) != 1)
        failed = (int64_t)i;
    }
  }
  EVP_CIPHER_CTX_free(ctx);
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
