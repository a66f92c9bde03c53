/*
 * oai_media.c - data URIs, MIME guessing, base64 (see oai_media.h).
 */
#include "oai_media.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FILES_URI_PREFIX "https://generativelanguage.googleapis.com/v1beta/"

char *gkm_base64_encode(const unsigned char *p, size_t n, size_t *outlen)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = (n + 2) / 3 * 4;
    char *out = gkm_xmalloc(olen + 1);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}

const char *gkm_media_mime_from_name(const char *name, size_t len)
{
    static const char *const table[][2] = {
        {"jpg", "image/jpeg"},   {"jpeg", "image/jpeg"}, {"png", "image/png"},
        {"gif", "image/gif"},    {"webp", "image/webp"}, {"heic", "image/heic"},
        {"heif", "image/heif"},  {"pdf", "application/pdf"},
        {"txt", "text/plain"},   {"md", "text/md"},      {"html", "text/html"},
        {"htm", "text/html"},    {"csv", "text/csv"},    {"xml", "text/xml"},
        {"rtf", "text/rtf"},     {"css", "text/css"},
        {"js", "text/javascript"},
        {"py", "text/x-python"}, {"json", "application/json"},
        {"wav", "audio/wav"},    {"mp3", "audio/mp3"},   {"aiff", "audio/aiff"},
        {"aac", "audio/aac"},    {"ogg", "audio/ogg"},   {"flac", "audio/flac"},
        {"m4a", "audio/m4a"},    {"opus", "audio/ogg"},
        {"mp4", "video/mp4"},    {"mpeg", "video/mpeg"}, {"mpg", "video/mpg"},
        {"mov", "video/mov"},    {"avi", "video/avi"},   {"flv", "video/x-flv"},
        {"webm", "video/webm"},  {"wmv", "video/wmv"},   {"3gp", "video/3gpp"},
    };
    size_t end = 0;
    while (end < len && name[end] != '?' && name[end] != '#')
        end++;
    size_t dot = end;
    while (dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/')
        dot--;
    if (dot == 0 || name[dot - 1] != '.')
        return NULL;
    size_t elen = end - dot;
    if (elen == 0 || elen > 5)
        return NULL;
    char ext[8];
    for (size_t i = 0; i < elen; i++) {
        char c = name[dot + i];
        ext[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    ext[elen] = '\0';
    for (size_t i = 0; i < GKM_ARRAY_LEN(table); i++)
        if (strcmp(ext, table[i][0]) == 0)
            return table[i][1];
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int prefix_ci(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != pre[i])
            return 0;
    }
    return 1;
}

/* Normalise a base64 payload: drop whitespace, map url-safe letters,
 * check the alphabet. Returns a heap copy or NULL. */
static char *clean_base64(const char *p, size_t n)
{
    char *out = gkm_xmalloc(n + 1);
    size_t o = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        if (c == '=') {
            pad++;
        } else if (pad > 0 ||
                   !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            free(out);
            return NULL;
        }
        out[o++] = c;
    }
    if (pad > 2 || o == 0) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    return out;
}

int gkm_media_data_uri(const char *uri, size_t len, char **mime, char **b64,
                       const char **why)
{
    if (!prefix_ci(uri, len, "data:")) {
        *why = "not a data: URI";
        return -1;
    }
    const char *p = uri + 5, *end = uri + len;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (comma == NULL) {
        *why = "malformed data: URI (no comma)";
        return -1;
    }
    /* Media type: up to the first ';' of the header. */
    const char *semi = memchr(p, ';', (size_t)(comma - p));
    const char *mend = semi ? semi : comma;
    int is_b64 = 0;
    for (const char *q = semi; q && q < comma;) {
        const char *next = memchr(q + 1, ';', (size_t)(comma - q - 1));
        const char *pe = next ? next : comma;
        if (pe - q - 1 == 6 && prefix_ci(q + 1, 6, "base64"))
            is_b64 = 1;
        q = next;
    }
    char *m = gkm_xstrndup(p, (size_t)(mend - p));
    for (char *c = m; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    const char *data = comma + 1;
    size_t dlen = (size_t)(end - data);
    char *enc;
    if (is_b64) {
        enc = clean_base64(data, dlen);
        if (enc == NULL) {
            free(m);
            *why = "data: URI payload is not valid base64";
            return -1;
        }
    } else {
        unsigned char *raw = gkm_xmalloc(dlen + 1);
        size_t o = 0;
        for (size_t i = 0; i < dlen; i++) {
            int h, l;
            if (data[i] == '%' && i + 2 < dlen &&
                (h = hexval(data[i + 1])) >= 0 &&
                (l = hexval(data[i + 2])) >= 0) {
                raw[o++] = (unsigned char)(h << 4 | l);
                i += 2;
            } else {
                raw[o++] = (unsigned char)data[i];
            }
        }
        enc = gkm_base64_encode(raw, o, NULL);
        free(raw);
        if (o == 0) {
            free(enc);
            free(m);
            *why = "data: URI has no payload";
            return -1;
        }
    }
    *mime = m;
    *b64 = enc;
    return 0;
}

static int is_youtube(const char *url, size_t len)
{
    static const char *const hosts[] = {
        "https://www.youtube.com/", "https://youtube.com/",
        "https://m.youtube.com/",   "https://youtu.be/",
        "http://www.youtube.com/",  "http://youtube.com/",
        "http://youtu.be/"};
    for (size_t i = 0; i < GKM_ARRAY_LEN(hosts); i++)
        if (prefix_ci(url, len, hosts[i]))
            return 1;
    return 0;
}

static json_t *file_data(const char *uri, size_t len, const char *mime)
{
    json_t *fd = json_object();
    if (mime != NULL)
        json_object_set_new(fd, "mimeType", json_string(mime));
    json_object_set_new(fd, "fileUri", json_stringn(uri, len));
    return json_pack("{so}", "fileData", fd);
}

json_t *gkm_media_url_part(const char *url, size_t len, const char *mime_hint,
                           const char **why)
{
    if (prefix_ci(url, len, "data:")) {
        char *mime = NULL, *b64 = NULL;
        if (gkm_media_data_uri(url, len, &mime, &b64, why) != 0)
            return NULL;
        const char *mt = mime[0] ? mime : mime_hint;
        if (mt == NULL) {
            free(mime);
            free(b64);
            *why = "data: URI has no media type";
            return NULL;
        }
        json_t *part = json_pack("{s{ssss}}", "inlineData", "mimeType", mt,
                                 "data", b64);
        free(mime);
        free(b64);
        return part;
    }
    if (len > GKM_MEDIA_URL_MAX) {
        *why = "URL too long";
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f) {
            *why = "URL contains spaces or control characters";
            return NULL;
        }
    }
    if (prefix_ci(url, len, "files/")) {
        char *full = gkm_xasprintf("%s%.*s", FILES_URI_PREFIX, (int)len, url);
        json_t *part = file_data(full, strlen(full), NULL);
        free(full);
        return part;
    }
    if (prefix_ci(url, len, FILES_URI_PREFIX) || is_youtube(url, len))
        return file_data(url, len, NULL);
    if (prefix_ci(url, len, "https://") || prefix_ci(url, len, "http://") ||
        prefix_ci(url, len, "gs://")) {
        const char *mt = gkm_media_mime_from_name(url, len);
        return file_data(url, len, mt ? mt : mime_hint);
    }
    *why = "unsupported URL scheme (use https://, gs://, a Files API name "
           "or a data: URI)";
    return NULL;
}

json_t *gkm_media_inline_part(const char *mime, const char *data, size_t len,
                              const char **why)
{
    if (prefix_ci(data, len, "data:"))
        return gkm_media_url_part(data, len, mime, why);
    char *b64 = clean_base64(data, len);
    if (b64 == NULL) {
        *why = "payload is not valid base64";
        return NULL;
    }
    if (mime == NULL) {
        free(b64);
        *why = "media type unknown";
        return NULL;
    }
    json_t *part = json_pack("{s{ssss}}", "inlineData", "mimeType", mime,
                             "data", b64);
    free(b64);
    return part;
}
