/*
 * coffer's FUSE binding: libfuse 2.9's path API (Debian libfuse2), answered from JavaScript.
 *
 * Why not fuse-native: its utimens passes atime twice and libfuse never calls it for a change of
 * one time only (no flag_utime_omit_ok), so `tar -x`, `touch -m` and `cp -p` lose or garble
 * mtimes; its stat and statfs numbers are 32-bit. This file keeps the same shape (libfuse's
 * multi-threaded loop on its own threads, each request handed to the JS thread and waited for)
 * and fixes those.
 *
 * How a request travels: a libfuse thread fills a request_t on its stack, queues it on a
 * thread-safe function and waits on the request's semaphore; on the JS thread call_js turns it
 * into arguments for the dispatcher, which answers once through reply(); reply copies any result
 * into libfuse's memory and posts the semaphore. read/write hand JS a Buffer over libfuse's own
 * buffer; reply detaches it, so no JS code can touch that memory after the answer.
 */
#define FUSE_USE_VERSION 29
#define _FILE_OFFSET_BITS 64
#define _GNU_SOURCE
#include <errno.h>
#include <fuse.h>
#include <node_api.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <unistd.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "gocryptfs-blocks.h"
#include "napi-args.h"

/* Request kinds; lib/storage/fuse/native-fuse.ts has the same list. */
enum {
  OP_INIT,
  OP_GETATTR,
  OP_READDIR,
  OP_OPEN,
  OP_CREATE,
  OP_READ,
  OP_WRITE,
  OP_RELEASE,
  OP_FLUSH,
  OP_FSYNC,
  OP_TRUNCATE,
  OP_FTRUNCATE,
  OP_UNLINK,
  OP_RENAME,
  OP_LINK,
  OP_SYMLINK,
  OP_READLINK,
  OP_MKDIR,
  OP_RMDIR,
  OP_CHMOD,
  OP_CHOWN,
  OP_UTIMENS,
  OP_STATFS,
  OP_EXIT, /* the loop ended (unmounted); no answer expected */
};

#define STAT_FIELDS 13   /* mode uid gid size dev nlink ino rdev blksize blocks atimeMs mtimeMs ctimeMs */
#define STATFS_FIELDS 11 /* bsize frsize blocks bfree bavail files ffree favail fsid flag namemax */

typedef struct {
  int op;
  const char *path;
  const char *path2; /* rename/link: the new path; symlink: the link's path (path = target) */
  struct fuse_file_info *fi;
  char *buf; /* read/write data, readlink's output */
  size_t len;
  off_t offset;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int datasync;
  struct timespec tv[2];
  struct stat *st;
  struct statvfs *sv;
  void *dir_buf;
  fuse_fill_dir_t filler;
  napi_ref data_ref; /* the Buffer over buf, detached by reply */
  int result;
  int answered;
  sem_t done;
} request_t;

typedef struct {
  napi_threadsafe_function tsfn;
  struct fuse *fuse;
  struct fuse_chan *chan;
  char *mountpoint;
  pthread_t thread;
  int started;
  /* Reads served on libfuse's threads (fast_read): the content key, and a hold while a write
   * answered early (write-behind) may not have reached the backing file yet. */
  uint8_t key[KEY_LEN];
  int has_key;
  atomic_int hold;
  /* Taken shared by every native read, exclusively by stop_reads: once `stopped`, JS may close the
   * backing descriptors without a native read still using one. */
  pthread_rwlock_t gate;
  int stopped;
  /* Reads answered here and reads handed to JS, for `coffer mount --json` and the tests. */
  atomic_ulong native_reads, js_reads;
} bridge_t;

static request_t exit_request = {.op = OP_EXIT};

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* === libfuse threads: hand the request to JS and wait for the answer */

static int dispatch(request_t *r) {
  bridge_t *b = fuse_get_context()->private_data;
  if (sem_init(&r->done, 0, 0) != 0) return -EIO;
  if (napi_call_threadsafe_function(b->tsfn, r, napi_tsfn_blocking) != napi_ok) {
    sem_destroy(&r->done);
    return -ENOTCONN; /* shutting down */
  }
  while (sem_wait(&r->done) != 0 && errno == EINTR) {
  }
  sem_destroy(&r->done);
  return r->result;
}

static void *op_init(struct fuse_conn_info *conn) {
  (void)conn;
  bridge_t *b = fuse_get_context()->private_data;
  request_t r = {.op = OP_INIT};
  dispatch(&r);
  return b; /* becomes fuse_get_context()->private_data for every later request */
}

static int op_getattr(const char *path, struct stat *st) {
  request_t r = {.op = OP_GETATTR, .path = path, .st = st};
  return dispatch(&r);
}

static int op_readdir(const char *path, void *dir_buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi) {
  (void)offset;
  request_t r = {.op = OP_READDIR, .path = path, .dir_buf = dir_buf, .filler = filler, .fi = fi};
  return dispatch(&r);
}

static int op_open(const char *path, struct fuse_file_info *fi) {
  request_t r = {.op = OP_OPEN, .path = path, .fi = fi};
  return dispatch(&r);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  request_t r = {.op = OP_CREATE, .path = path, .mode = mode, .fi = fi};
  return dispatch(&r);
}

/* === reads served on libfuse's own thread */

#define HEADER_LEN 18
#define MAX_FAST_READ (1 << 20)

/* Per-thread scratch for stored blocks and an unaligned read's plaintext, freed at thread exit. */
typedef struct {
  uint8_t *stored, *plain;
  size_t stored_cap, plain_cap;
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_ready;

static void free_scratch(void *p);
static void make_scratch_key(void) { scratch_ready = pthread_key_create(&scratch_key, free_scratch) == 0; }

static void free_scratch(void *p) {
  scratch_t *s = p;
  free(s->stored);
  free(s->plain);
  free(s);
}

static uint8_t *grow(uint8_t **buf, size_t *cap, size_t want) {
  if (*cap >= want) return *buf;
  uint8_t *n = realloc(*buf, want);
  if (!n) return NULL;
  *buf = n;
  *cap = want;
  return n;
}

static ssize_t pread_full(int fd, uint8_t *buf, size_t len, off_t at) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, buf + got, len - got, at + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

/*
 * Reads and decrypts [offset, offset + len) of the backing file `fd` into `buf`, the way
 * OpenFile.readIntoSync does: the byte count (short only at end of file), or -1 for "ask the JS
 * thread". Anything unusual goes to JS (a block that fails authentication, a bad header, a
 * failed pread): it answers the same request with the error and logs it, as for every other
 * request. A block that does not authenticate because a write was rewriting it at that moment
 * gets a second, consistent look there too, since the JS thread runs one request at a time.
 */
static int fast_read(bridge_t *b, int fd, char *buf, size_t len, off_t offset) {
  if (len == 0 || len > MAX_FAST_READ || offset < 0) return -1;
  scratch_t *s = pthread_getspecific(scratch_key);
  if (!s) {
    if (!(s = calloc(1, sizeof *s)) || pthread_setspecific(scratch_key, s) != 0) {
      free(s);
      return -1;
    }
  }
  uint8_t header[HEADER_LEN];
  ssize_t h = pread_full(fd, header, HEADER_LEN, 0);
  if (h == 0) return 0; /* an empty file has no header */
  if (h != HEADER_LEN || header[0] != 0 || header[1] != 2 || all_zero(header + 2, FILE_ID_LEN)) return -1;
  bytes_t file_id = {header + 2, FILE_ID_LEN};
  uint64_t first = (uint64_t)offset / PLAIN_BS;
  uint64_t last = ((uint64_t)offset + len - 1) / PLAIN_BS;
  size_t head = (size_t)((uint64_t)offset % PLAIN_BS);
  size_t stored_len = (size_t)(last - first + 1) * CIPHER_BS;
  if (!grow(&s->stored, &s->stored_cap, stored_len)) return -1;
  ssize_t got = pread_full(fd, s->stored, stored_len, (off_t)(HEADER_LEN + first * CIPHER_BS));
  if (got < 0) return -1;
  if (got == 0) return 0; /* at or past the end of file */
  size_t plain = plain_length((size_t)got);
  /* Block-aligned and whole blocks (the kernel's page-cache reads): straight into libfuse's buffer. */
  int direct = head == 0 && plain <= len;
  uint8_t *out = direct ? (uint8_t *)buf : grow(&s->plain, &s->plain_cap, plain);
  if (!out || open_run(b->key, s->stored, (size_t)got, first, file_id, out) != -1) return -1;
  if (plain <= head) return 0;
  size_t n = plain - head < len ? plain - head : len;
  if (!direct) memcpy(buf, out + head, n);
  return (int)n;
}

static int op_read(const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *fi) {
  bridge_t *b = fuse_get_context()->private_data;
  int fd = (int)(fi->fh >> 32); /* 0: JS keeps this handle's reads (see take_value, OP_OPEN) */
  if (fd > 0 && b->has_key && !atomic_load(&b->hold) && pthread_rwlock_rdlock(&b->gate) == 0) {
    int n = b->stopped ? -1 : fast_read(b, fd, buf, len, offset);
    pthread_rwlock_unlock(&b->gate);
    if (n >= 0) {
      atomic_fetch_add_explicit(&b->native_reads, 1, memory_order_relaxed);
      return n;
    }
  }
  atomic_fetch_add_explicit(&b->js_reads, 1, memory_order_relaxed);
  request_t r = {.op = OP_READ, .path = path, .buf = buf, .len = len, .offset = offset, .fi = fi};
  return dispatch(&r);
}

static int op_write(const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *fi) {
  /* JS only reads from a write's buffer; the cast is libfuse's own const-ness. */
  request_t r = {.op = OP_WRITE, .path = path, .buf = (char *)buf, .len = len, .offset = offset, .fi = fi};
  return dispatch(&r);
}

static int op_release(const char *path, struct fuse_file_info *fi) {
  request_t r = {.op = OP_RELEASE, .path = path, .fi = fi};
  return dispatch(&r);
}

static int op_flush(const char *path, struct fuse_file_info *fi) {
  request_t r = {.op = OP_FLUSH, .path = path, .fi = fi};
  return dispatch(&r);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  request_t r = {.op = OP_FSYNC, .path = path, .datasync = datasync, .fi = fi};
  return dispatch(&r);
}

static int op_truncate(const char *path, off_t size) {
  request_t r = {.op = OP_TRUNCATE, .path = path, .offset = size};
  return dispatch(&r);
}

static int op_ftruncate(const char *path, off_t size, struct fuse_file_info *fi) {
  request_t r = {.op = OP_FTRUNCATE, .path = path, .offset = size, .fi = fi};
  return dispatch(&r);
}

static int op_unlink(const char *path) {
  request_t r = {.op = OP_UNLINK, .path = path};
  return dispatch(&r);
}

static int op_rename(const char *from, const char *to) {
  request_t r = {.op = OP_RENAME, .path = from, .path2 = to};
  return dispatch(&r);
}

static int op_link(const char *existing, const char *path) {
  request_t r = {.op = OP_LINK, .path = existing, .path2 = path};
  return dispatch(&r);
}

static int op_symlink(const char *target, const char *path) {
  request_t r = {.op = OP_SYMLINK, .path = target, .path2 = path};
  return dispatch(&r);
}

static int op_readlink(const char *path, char *buf, size_t len) {
  request_t r = {.op = OP_READLINK, .path = path, .buf = buf, .len = len};
  return dispatch(&r);
}

static int op_mkdir(const char *path, mode_t mode) {
  request_t r = {.op = OP_MKDIR, .path = path, .mode = mode};
  return dispatch(&r);
}

static int op_rmdir(const char *path) {
  request_t r = {.op = OP_RMDIR, .path = path};
  return dispatch(&r);
}

static int op_chmod(const char *path, mode_t mode) {
  request_t r = {.op = OP_CHMOD, .path = path, .mode = mode};
  return dispatch(&r);
}

static int op_chown(const char *path, uid_t uid, gid_t gid) {
  request_t r = {.op = OP_CHOWN, .path = path, .uid = uid, .gid = gid};
  return dispatch(&r);
}

/* With flag_utime_omit_ok, either time may be UTIME_OMIT (keep) or UTIME_NOW. */
static int op_utimens(const char *path, const struct timespec tv[2]) {
  request_t r = {.op = OP_UTIMENS, .path = path};
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  for (int i = 0; i < 2; i++) r.tv[i] = tv[i].tv_nsec == UTIME_NOW ? now : tv[i];
  return dispatch(&r);
}

static int op_statfs(const char *path, struct statvfs *sv) {
  request_t r = {.op = OP_STATFS, .path = path, .sv = sv};
  return dispatch(&r);
}

/* === the JS thread: requests become dispatcher(op, request, ...arguments) */

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value undef(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* A time for JS: milliseconds since the epoch, or undefined for UTIME_OMIT. */
static napi_value time_ms(napi_env env, struct timespec t) {
  if (t.tv_nsec == UTIME_OMIT) return undef(env);
  return num(env, (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6);
}

static napi_value data_buffer(napi_env env, request_t *r) {
  napi_value v;
  if (napi_create_external_buffer(env, r->len, r->buf, NULL, NULL, &v) != napi_ok ||
      napi_create_reference(env, v, 1, &r->data_ref) != napi_ok)
    return undef(env);
  return v;
}

static void call_js(napi_env env, napi_value dispatcher, void *context, void *data) {
  (void)context;
  request_t *r = data;
  if (env == NULL) { /* the function is being torn down: answer so no libfuse thread hangs */
    if (r != &exit_request) {
      r->result = -ENOTCONN;
      sem_post(&r->done);
    }
    return;
  }
  napi_value argv[7];
  size_t argc = 2;
  napi_create_int32(env, r->op, &argv[0]);
  if (r == &exit_request) {
    argv[1] = undef(env);
  } else {
    napi_create_external(env, r, NULL, NULL, &argv[1]);
  }
  uint64_t fh = r->fi ? r->fi->fh & 0xffffffffu : 0; /* the high half is the backing fd */
  switch (r->op) {
    case OP_INIT:
    case OP_EXIT:
      break;
    case OP_GETATTR:
    case OP_READDIR:
    case OP_UNLINK:
    case OP_RMDIR:
    case OP_READLINK:
    case OP_STATFS:
      argv[argc++] = str(env, r->path);
      break;
    case OP_OPEN:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, r->fi->flags);
      break;
    case OP_CREATE:
    case OP_MKDIR:
    case OP_CHMOD:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, r->mode);
      break;
    case OP_READ:
    case OP_WRITE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)fh);
      argv[argc++] = data_buffer(env, r);
      argv[argc++] = num(env, (double)r->len);
      argv[argc++] = num(env, (double)r->offset);
      break;
    case OP_RELEASE:
    case OP_FLUSH:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)fh);
      break;
    case OP_FSYNC:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, r->datasync);
      argv[argc++] = num(env, (double)fh);
      break;
    case OP_TRUNCATE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)r->offset);
      break;
    case OP_FTRUNCATE:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, (double)fh);
      argv[argc++] = num(env, (double)r->offset);
      break;
    case OP_RENAME:
    case OP_LINK:
    case OP_SYMLINK:
      argv[argc++] = str(env, r->path);
      argv[argc++] = str(env, r->path2);
      break;
    case OP_CHOWN:
      argv[argc++] = str(env, r->path);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_UTIMENS:
      argv[argc++] = str(env, r->path);
      argv[argc++] = time_ms(env, r->tv[0]);
      argv[argc++] = time_ms(env, r->tv[1]);
      break;
  }
  napi_value global;
  napi_get_global(env, &global);
  /* An exception in the dispatcher is a bug there; Node reports it as uncaught. The request still
   * gets its answer from whoever holds it, and the dispatcher answers every request once. */
  napi_call_function(env, global, dispatcher, argc, argv, NULL);
}

/* === reply(request, result, value?) on the JS thread */

static int get_doubles(napi_env env, napi_value v, double **out, size_t want) {
  void *data;
  size_t count;
  if (!get_typed(env, v, napi_float64_array, &data, &count) || count < want) return 0;
  *out = data;
  return 1;
}

static struct timespec from_ms(double ms) {
  struct timespec t;
  double s = ms / 1e3;
  t.tv_sec = (time_t)s;
  if ((double)t.tv_sec > s) t.tv_sec--; /* floor for times before 1970 */
  t.tv_nsec = (long)((ms - (double)t.tv_sec * 1e3) * 1e6);
  if (t.tv_nsec < 0) t.tv_nsec = 0;
  if (t.tv_nsec > 999999999) t.tv_nsec = 999999999;
  return t;
}

/* Copies a successful request's value into libfuse's memory; a negative errno if it is unusable. */
static int take_value(napi_env env, request_t *r, napi_value value) {
  double *d;
  switch (r->op) {
    case OP_GETATTR:
      if (!get_doubles(env, value, &d, STAT_FIELDS)) return -EIO;
      memset(r->st, 0, sizeof *r->st);
      r->st->st_mode = (mode_t)d[0];
      r->st->st_uid = (uid_t)d[1];
      r->st->st_gid = (gid_t)d[2];
      r->st->st_size = (off_t)d[3];
      r->st->st_dev = (dev_t)d[4];
      r->st->st_nlink = (nlink_t)d[5];
      r->st->st_ino = (ino_t)d[6];
      r->st->st_rdev = (dev_t)d[7];
      r->st->st_blksize = (blksize_t)d[8];
      r->st->st_blocks = (blkcnt_t)d[9];
      r->st->st_atim = from_ms(d[10]);
      r->st->st_mtim = from_ms(d[11]);
      r->st->st_ctim = from_ms(d[12]);
      return 0;
    case OP_STATFS:
      if (!get_doubles(env, value, &d, STATFS_FIELDS)) return -EIO;
      memset(r->sv, 0, sizeof *r->sv);
      r->sv->f_bsize = (unsigned long)d[0];
      r->sv->f_frsize = (unsigned long)d[1];
      r->sv->f_blocks = (fsblkcnt_t)d[2];
      r->sv->f_bfree = (fsblkcnt_t)d[3];
      r->sv->f_bavail = (fsblkcnt_t)d[4];
      r->sv->f_files = (fsfilcnt_t)d[5];
      r->sv->f_ffree = (fsfilcnt_t)d[6];
      r->sv->f_favail = (fsfilcnt_t)d[7];
      r->sv->f_fsid = (unsigned long)d[8];
      r->sv->f_flag = (unsigned long)d[9];
      r->sv->f_namemax = (unsigned long)d[10];
      return 0;
    case OP_OPEN:
    case OP_CREATE: {
      /* JS's handle number, plus the backing fd times 2^32 if libfuse's threads may read it. */
      double fh;
      if (napi_get_value_double(env, value, &fh) != napi_ok || !(fh >= 0 && fh <= 9007199254740991.0)) return -EIO;
      r->fi->fh = (uint64_t)fh;
      return 0;
    }
    case OP_READDIR: {
      bool is_array;
      uint32_t n;
      if (napi_is_array(env, value, &is_array) != napi_ok || !is_array ||
          napi_get_array_length(env, value, &n) != napi_ok)
        return -EIO;
      char name[1024];
      for (uint32_t i = 0; i < n; i++) {
        napi_value e;
        size_t got;
        if (napi_get_element(env, value, i, &e) != napi_ok ||
            napi_get_value_string_utf8(env, e, name, sizeof name, &got) != napi_ok || got >= sizeof name - 1)
          return -EIO;
        if (r->filler(r->dir_buf, name, NULL, 0) != 0) break; /* libfuse's buffer is full */
      }
      return 0;
    }
    case OP_READLINK: {
      size_t got;
      if (r->len == 0 || napi_get_value_string_utf8(env, value, r->buf, r->len, &got) != napi_ok) return -EIO;
      return 0; /* NUL-terminated, cut to the buffer as readlink(2) cuts */
    }
    default:
      return 0;
  }
}

static napi_value reply(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
    return throw_type(env, "reply(request, result, value?)");
  void *ptr;
  int32_t result;
  if (napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL ||
      napi_get_value_int32(env, argv[1], &result) != napi_ok)
    return throw_type(env, "reply: bad request or result");
  request_t *r = ptr;
  if (r->answered) return throw_type(env, "reply: request already answered");
  r->answered = 1;
  if (r->data_ref) { /* libfuse's buffer: no JS access once answered */
    napi_value data, ab;
    if (napi_get_reference_value(env, r->data_ref, &data) == napi_ok &&
        napi_get_named_property(env, data, "buffer", &ab) == napi_ok)
      napi_detach_arraybuffer(env, ab);
    napi_delete_reference(env, r->data_ref);
    r->data_ref = NULL;
  }
  if (result > 0 && r->op != OP_READ && r->op != OP_WRITE) result = 0;
  if (result == 0 && argc >= 3) result = take_value(env, r, argv[2]);
  if ((r->op == OP_READ || r->op == OP_WRITE) && result > (int32_t)r->len) result = -EIO;
  r->result = result;
  sem_post(&r->done); /* r lives on the waiting thread's stack: not touched after this */
  return NULL;
}

/* === mount(mountpoint, options, dispatcher) and the loop thread */

static void *loop_thread(void *data) {
  bridge_t *b = data;
  /* Signals belong to Node's thread (libfuse's workers block them too). */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  fuse_loop_mt(b->fuse);
  /* Unmounted (fusermount -u, or the kernel aborted the connection): close our end, tell JS. */
  fuse_unmount(b->mountpoint, b->chan);
  fuse_destroy(b->fuse);
  napi_call_threadsafe_function(b->tsfn, &exit_request, napi_tsfn_blocking);
  napi_release_threadsafe_function(b->tsfn, napi_tsfn_release);
  return NULL;
}

static void finalize_bridge(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  bridge_t *b = data;
  if (b->started) pthread_join(b->thread, NULL);
  OPENSSL_cleanse(b->key, KEY_LEN);
  pthread_rwlock_destroy(&b->gate);
  free(b->mountpoint);
  free(b);
}

static napi_value mount(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4)
    return throw_type(env, "mount(mountpoint, options, dispatcher, readKey)");
  char mountpoint[4096], options[4096];
  size_t len;
  napi_valuetype t;
  if (napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof mountpoint, &len) != napi_ok ||
      len >= sizeof mountpoint - 1 ||
      napi_get_value_string_utf8(env, argv[1], options, sizeof options, &len) != napi_ok ||
      len >= sizeof options - 1 || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function)
    return throw_type(env, "mount: bad mountpoint, options or dispatcher");
  napi_valuetype key_type;
  bytes_t key = {NULL, 0};
  if (napi_typeof(env, argv[3], &key_type) != napi_ok ||
      (key_type != napi_null && (!get_bytes(env, argv[3], &key, 0) || key.len != KEY_LEN)))
    return throw_type(env, "mount: the read key must be 32 bytes or null");

  bridge_t *b = calloc(1, sizeof *b);
  if (!b || !(b->mountpoint = strdup(mountpoint))) {
    free(b);
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "mount: out of memory");
    return NULL;
  }
  if (key.data) {
    memcpy(b->key, key.data, KEY_LEN);
    b->has_key = 1;
  }
  atomic_init(&b->hold, 0);
  atomic_init(&b->native_reads, 0);
  atomic_init(&b->js_reads, 0);
  /* Writer first: stopReads at unmount must not wait behind a steady stream of reads. */
  pthread_rwlockattr_t gate_attr;
  pthread_rwlockattr_init(&gate_attr);
  pthread_rwlockattr_setkind_np(&gate_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  int gate_err = pthread_rwlock_init(&b->gate, &gate_attr);
  pthread_rwlockattr_destroy(&gate_attr);
  if (gate_err != 0) {
    OPENSSL_cleanse(b->key, KEY_LEN);
    free(b->mountpoint);
    free(b);
    napi_throw_error(env, "ERR_STORAGE_MOUNT_FAILED", "mount: no lock");
    return NULL;
  }
  char *fuse_argv[] = {"coffer", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fuse_argv);
  struct fuse_operations ops = {
      .init = op_init,
      .getattr = op_getattr,
      .readdir = op_readdir,
      .open = op_open,
      .create = op_create,
      .read = op_read,
      .write = op_write,
      .release = op_release,
      .flush = op_flush,
      .fsync = op_fsync,
      .truncate = op_truncate,
      .ftruncate = op_ftruncate,
      .unlink = op_unlink,
      .rename = op_rename,
      .link = op_link,
      .symlink = op_symlink,
      .readlink = op_readlink,
      .mkdir = op_mkdir,
      .rmdir = op_rmdir,
      .chmod = op_chmod,
      .chown = op_chown,
      .utimens = op_utimens,
      .statfs = op_statfs,
      .flag_utime_omit_ok = 1,
  };
  b->chan = fuse_mount(mountpoint, &args);
  if (!b->chan) {
    fuse_opt_free_args(&args);
    pthread_rwlock_destroy(&b->gate);
    OPENSSL_cleanse(b->key, KEY_LEN);
    free(b->mountpoint);
    free(b);
    napi_throw_error(env, "ERR_STORAGE_MOUNT_FAILED", "libfuse could not mount (see its message above)");
    return NULL;
  }
  b->fuse = fuse_new(b->chan, &args, &ops, sizeof ops, b);
  fuse_opt_free_args(&args);
  napi_value name;
  if (!b->fuse || napi_create_string_utf8(env, "coffer:fuse", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, b, finalize_bridge, NULL, call_js,
                                      &b->tsfn) != napi_ok) {
    if (b->fuse) fuse_destroy(b->fuse);
    fuse_unmount(mountpoint, b->chan);
    pthread_rwlock_destroy(&b->gate);
    OPENSSL_cleanse(b->key, KEY_LEN);
    free(b->mountpoint);
    free(b);
    napi_throw_error(env, "ERR_STORAGE_MOUNT_FAILED", "libfuse could not start the file system");
    return NULL;
  }
  b->started = 1;
  if (pthread_create(&b->thread, NULL, loop_thread, b) != 0) {
    b->started = 0;
    /* No thread: nothing can call the function; release it here and undo the mount. */
    fuse_destroy(b->fuse);
    fuse_unmount(mountpoint, b->chan);
    napi_release_threadsafe_function(b->tsfn, napi_tsfn_abort); /* frees b (finalize_bridge) */
    napi_throw_error(env, "ERR_STORAGE_MOUNT_FAILED", "could not start the FUSE thread");
    return NULL;
  }
  napi_value handle;
  napi_create_external(env, b, NULL, NULL, &handle);
  return handle;
}

/*
 * hold(handle, on): while on, every read goes to the JS thread. Set before a write that was
 * answered early (write-behind) is answered, cleared once it is on disk. The handle is not used
 * after the loop has ended (lib/storage/fuse/binding.ts).
 */
static napi_value hold(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *ptr;
  bool on;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL ||
      napi_get_value_bool(env, argv[1], &on) != napi_ok)
    return throw_type(env, "hold(handle, on)");
  atomic_store(&((bridge_t *)ptr)->hold, on ? 1 : 0);
  return NULL;
}

/* readCounts(handle) -> [answered natively, handed to JS] */
static napi_value read_counts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *ptr;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL)
    return throw_type(env, "readCounts(handle)");
  bridge_t *b = ptr;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, num(env, (double)atomic_load(&b->native_reads)));
  napi_set_element(env, out, 1, num(env, (double)atomic_load(&b->js_reads)));
  return out;
}

/*
 * stopReads(handle): from now on every read goes to the JS thread; returns once no native read is
 * running, so the backing descriptors may be closed (at unmount). Wipes the key copy.
 */
static napi_value stop_reads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *ptr;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL)
    return throw_type(env, "stopReads(handle)");
  bridge_t *b = ptr;
  pthread_rwlock_wrlock(&b->gate);
  b->stopped = 1;
  OPENSSL_cleanse(b->key, KEY_LEN);
  pthread_rwlock_unlock(&b->gate);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"mount", NULL, mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reply", NULL, reply, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hold", NULL, hold, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stopReads", NULL, stop_reads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readCounts", NULL, read_counts, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  pthread_once(&scratch_once, make_scratch_key);
  if (!scratch_ready) {
    napi_throw_error(env, "ERR_OPERATION_FAILED", "fuse-bridge: no thread-local key");
    return NULL;
  }
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
