/*
 * route.h - pure helpers for the native passthrough: path checks, model
 * extraction, query filtering and which headers cross the proxy.
 * No I/O; unit tested in tests/unit/test_route.c.
 */
#ifndef GKM_ROUTE_H
#define GKM_ROUTE_H

#include <stddef.h>

/* Split a request URI ("/v1beta/x?a=b") into a normalised path and the
 * raw query. The path gets "%3A"/"%3a" decoded to ':' (Gemini method
 * separator; spec §1.1). Returns 0, or -1 when the URI is not an absolute
 * path, is longer than 8 KiB, has a space or control byte, or has "." /
 * ".." segments (raw or percent-encoded). A "#fragment" is dropped. *path
 * and *query are fresh heap strings (query may be ""). */
int gkm_route_split(const char *uri, char **path, char **query);

/* 1 when path belongs to the native Gemini surface forwarded as is:
 * /v1beta/..., /v1/..., /upload/... */
int gkm_route_is_native(const char *path);

/* The model a Gemini path names: the segment after "models/" or
 * "tunedModels/" up to ':' '/' or the end, if it is 1..GKM_MODEL_MAX chars
 * of [A-Za-z0-9._-]; else "". out must have GKM_MODEL_MAX + 1 bytes. */
void gkm_route_model(const char *path, char *out, size_t outlen);

/* Remove every "key" parameter from a raw query string; the client's token
 * must never travel upstream. If key_out is not NULL, the first key's
 * percent-decoded value is stored there (heap; NULL if absent). Returns a
 * fresh heap string (may be ""). */
char *gkm_route_strip_key(const char *query, char **key_out);

/* 1 if a client request header must not be forwarded upstream: hop-by-hop
 * (RFC 7230 §6.1), Host, Content-Length, client credentials, cookies,
 * Accept-Encoding/Expect (we set our own), forwarding headers. `connection`
 * is the value of the request's Connection header (names listed there are
 * hop-by-hop too) or NULL. */
int gkm_route_drop_request_header(const char *name, const char *connection);

/* 1 if an upstream response header must not be relayed to the client:
 * hop-by-hop, Content-Length/Content-Encoding (we re-frame and decode),
 * Alt-Svc, Server. */
int gkm_route_drop_response_header(const char *name, const char *connection);

#endif
