/*
 * route.c - path, query and header rules for the passthrough (see route.h).
 */
#include "route.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "keypool.h"
#include "util.h"

#define URI_MAX 8192

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A segment is a dot segment when it decodes to "." or "..". */
static int is_dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return 0;
            int h = hexval((unsigned char)s[i + 1]);
            int l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return 0;
            c = h * 16 + l;
            i += 2;
        }
        if (c != '.')
            return 0;
        dots++;
    }
    return dots == 1 || dots == 2;
}

int gkm_route_split(const char *uri, char **path, char **query)
{
    size_t len = strnlen(uri, URI_MAX + 1);
    if (len == 0 || len > URI_MAX || uri[0] != '/')
        return -1;
    /* The upstream request line carries path and query as given: no
     * control bytes or spaces; a fragment is never sent on. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uri[i];
        if (c <= ' ' || c == 0x7f)
            return -1;
        if (c == '#') {
            len = i;
            break;
        }
    }
    const char *q = memchr(uri, '?', len);
    size_t plen = q ? (size_t)(q - uri) : len;
    /* Reject dot segments: they would let a client address upstream paths
     * outside the forwarded prefixes. */
    const char *seg = uri + 1;
    while (seg <= uri + plen) {
        const char *end = memchr(seg, '/', (size_t)(uri + plen - seg));
        size_t n = end ? (size_t)(end - seg) : (size_t)(uri + plen - seg);
        if (n > 0 && is_dot_segment(seg, n))
            return -1;
        if (end == NULL)
            break;
        seg = end + 1;
    }
    /* The path with each "%3A" decoded to ':' (the output is never longer
     * than the input). */
    char *out = gkm_xmalloc(plen + 1);
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        if (uri[i] == '%' && i + 2 < plen && uri[i + 1] == '3' &&
            (uri[i + 2] == 'A' || uri[i + 2] == 'a')) {
            out[o++] = ':';
            i += 2;
            continue;
        }
        out[o++] = uri[i];
    }
    out[o] = '\0';
    *path = out;
    *query = q ? gkm_xstrndup(q + 1, (size_t)(uri + len - q - 1)) : gkm_xstrdup("");
    return 0;
}

int gkm_route_is_native(const char *path)
{
    return strncmp(path, "/v1beta/", 8) == 0 || strncmp(path, "/v1/", 4) == 0 ||
           strncmp(path, "/upload/", 8) == 0;
}

void gkm_route_model(const char *path, char *out, size_t outlen)
{
    static const char *marks[] = {"/models/", "/tunedModels/"};
    out[0] = '\0';
    for (size_t m = 0; m < GKM_ARRAY_LEN(marks); m++) {
        const char *p = strstr(path, marks[m]);
        if (p == NULL)
            continue;
        p += strlen(marks[m]);
        size_t n = 0;
        while (p[n] && p[n] != ':' && p[n] != '/')
            n++;
        if (n == 0 || n > GKM_MODEL_MAX || n + 1 > outlen)
            return;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
                return;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        return;
    }
}

static char *pct_decode(const char *s, size_t n)
{
    char *out = gkm_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            int h = hexval((unsigned char)s[i + 1]);
            int l = hexval((unsigned char)s[i + 2]);
            if (h >= 0 && l >= 0) {
                out[k++] = (char)(h * 16 + l);
                i += 2;
                continue;
            }
        }
        out[k++] = s[i] == '+' ? ' ' : s[i];
    }
    out[k] = '\0';
    return out;
}

char *gkm_route_strip_key(const char *query, char **key_out)
{
    struct gkm_buf b;
    gkm_buf_init(&b, strlen(query) + 1);
    if (key_out)
        *key_out = NULL;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        int is_key = (n >= 4 && strncmp(p, "key=", 4) == 0) ||
                     (n == 3 && strncmp(p, "key", 3) == 0);
        if (is_key) {
            if (key_out && *key_out == NULL)
                *key_out = n > 4 ? pct_decode(p + 4, n - 4) : gkm_xstrdup("");
        } else if (n > 0) {
            if ((b.len > 0 && gkm_buf_append(&b, "&", 1) != 0) ||
                gkm_buf_append(&b, p, n) != 0)
                break; /* cannot happen: cap is the input length */
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return gkm_buf_take(&b, NULL);
}

/* Is name listed (comma-separated, case-insensitive) in the Connection
 * header value? */
static int in_connection(const char *name, const char *connection)
{
    if (connection == NULL)
        return 0;
    size_t nlen = strlen(name);
    const char *p = connection;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == nlen && strncasecmp(start, name, nlen) == 0)
            return 1;
    }
    return 0;
}

/* list entries are lower case; the first letter decides most misses. */
static int in_list(const char *name, const char *const *list, size_t n)
{
    char c = name[0];
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    for (size_t i = 0; i < n; i++)
        if (list[i][0] == c && gkm_strcaseeq(name, list[i]))
            return 1;
    return 0;
}

static const char *const hop_by_hop[] = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
};

int gkm_route_drop_request_header(const char *name, const char *connection)
{
    static const char *const drop[] = {
        "host", "content-length", "authorization", "x-goog-api-key",
        "x-api-key", "cookie", "accept-encoding", "expect", "forwarded",
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
        "x-real-ip",
    };
    return in_list(name, hop_by_hop, GKM_ARRAY_LEN(hop_by_hop)) ||
           in_list(name, drop, GKM_ARRAY_LEN(drop)) ||
           in_connection(name, connection);
}

int gkm_route_drop_response_header(const char *name, const char *connection)
{
    static const char *const drop[] = {
        "content-length", "content-encoding", "alt-svc", "server",
    };
    return in_list(name, hop_by_hop, GKM_ARRAY_LEN(hop_by_hop)) ||
           in_list(name, drop, GKM_ARRAY_LEN(drop)) ||
           in_connection(name, connection);
}
