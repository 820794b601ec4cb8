/*
 * gocryptfs content blocks (see lib/storage/content-cipher.ts), shared by coffer's two addons:
 * gcm-blocks.c (AES-GCM for the JS code) and fuse-bridge.c (reads served on libfuse's threads).
 * A stored block is nonce16 || ciphertext || tag16, with additional data u64be(block number) ||
 * file ID; a full-size all-zero stored block is a hole and reads as zeros; an all-zero nonce is
 * refused. One copy of these rules, so both addons and the JS path agree (the tests hold them to
 * the same results).
 */
#ifndef COFFER_GOCRYPTFS_BLOCKS_H
#define COFFER_GOCRYPTFS_BLOCKS_H

#include <openssl/evp.h>
#include <stddef.h>
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

/*
 * Decrypts consecutive stored blocks into `out` (4096 bytes per block): -1 if every block
 * authenticated, else the index of the first one that did not (then `out` holds unauthenticated
 * bytes the caller must not use); -2 if OpenSSL could not set up. Touches no JS value, so any
 * thread may run it.
 */
static int64_t open_run(const uint8_t *key, const uint8_t *stored, size_t stored_len, uint64_t first,
                        bytes_t file_id, uint8_t *out) {
  size_t n = (stored_len + CIPHER_BS - 1) / CIPHER_BS;
  int64_t failed = -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, NULL) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return -2;
  }
  uint8_t ad[8 + FILE_ID_LEN];
  for (size_t i = 0; i < n && failed < 0; i++) {
    const uint8_t *block = stored + i * CIPHER_BS;
    size_t len = stored_len - i * CIPHER_BS < CIPHER_BS ? stored_len - i * CIPHER_BS : CIPHER_BS;
    uint8_t *plain = out + i * PLAIN_BS;
    int outl;
    if (len <= OVERHEAD) {
      failed = (int64_t)i;
    } else if (all_zero(block, NONCE_LEN)) {
      /* A sealer never writes a zero nonce, so only here can a block be a hole (a full-size
       * all-zero block reads as zeros); any other zero nonce is refused, as gocryptfs does.
       * Checking the nonce first spares scanning every 4 KiB block for zeros. */
      if (len == CIPHER_BS && all_zero(block, len))
        memset(plain, 0, PLAIN_BS);
      else
        failed = (int64_t)i;
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
  return failed;
}

#endif
