/*
 * Typed-array arguments from JavaScript, checked the same way by both of coffer's addons
 * (gcm-blocks.c, fuse-bridge.c): anything but a typed array of the expected element type is
 * refused, never reinterpreted.
 */
#ifndef COFFER_NAPI_ARGS_H
#define COFFER_NAPI_ARGS_H

#include <node_api.h>
#include <stddef.h>

/* The data and element count of `v` if it is a typed array of `type`; 0 otherwise. */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type type, void **data, size_t *count) {
  bool is_typed;
  napi_typedarray_type actual;
  return napi_is_typedarray(env, v, &is_typed) == napi_ok && is_typed &&
         napi_get_typedarray_info(env, v, &actual, count, data, NULL, NULL) == napi_ok && actual == type;
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
  void *data;
  if (!get_typed(env, v, napi_uint8_array, &data, &out->len)) return 0;
  out->data = data;
  return 1;
}

#endif
