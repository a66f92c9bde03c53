/* Fake Gemini upstream: small helpers. */
#include "fake.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* ------------------------------------------------------------ memory */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "fake-gemini: out of memory\n");
        abort();
    }
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ------------------------------------------------------------ hash map */

uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void hm_init(struct hmap *m, void (*freev)(void *))
{
    m->nb = 64;
    m->n = 0;
    m->b = calloc(m->nb, sizeof *m->b);
    if (!m->b)
        abort();
    m->freev = freev;
}

static struct hent **hm_slot(const struct hmap *m, const char *k)
{
    struct hent **pp = &m->b[hash_str(k) & (m->nb - 1)];
    while (*pp && strcmp((*pp)->k, k) != 0)
        pp = &(*pp)->next;
    return pp;
}

void *hm_get(const struct hmap *m, const char *k)
{
    struct hent **pp = hm_slot(m, k);
    return *pp ? (*pp)->v : NULL;
}

static void hm_grow(struct hmap *m)
{
    size_t nb = m->nb * 2;
    struct hent **b = calloc(nb, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < m->nb; i++) {
        struct hent *e = m->b[i];
        while (e) {
            struct hent *nx = e->next;
            size_t j = hash_str(e->k) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = nx;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

int hm_put(struct hmap *m, const char *k, void *v)
{
    struct hent **pp = hm_slot(m, k);
    if (*pp) {
        if (m->freev && (*pp)->v != v)
            m->freev((*pp)->v);
        (*pp)->v = v;
        return 0;
    }
    struct hent *e = xmalloc(sizeof *e);
    e->k = xstrdup(k);
    e->v = v;
    e->next = NULL;
    *pp = e;
    if (++m->n > m->nb)
        hm_grow(m);
    return 1;
}

int hm_del(struct hmap *m, const char *k)
{
    struct hent **pp = hm_slot(m, k);
    if (!*pp)
        return 0;
    struct hent *e = *pp;
    *pp = e->next;
    if (m->freev)
        m->freev(e->v);
    free(e->k);
    free(e);
    m->n--;
    return 1;
}

void hm_clear(struct hmap *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct hent *e = m->b[i];
        while (e) {
            struct hent *nx = e->next;
            if (m->freev)
                m->freev(e->v);
            free(e->k);
            free(e);
            e = nx;
        }
        m->b[i] = NULL;
    }
    m->n = 0;
}

void hm_free(struct hmap *m)
{
    hm_clear(m);
    free(m->b);
    m->b = NULL;
    m->nb = 0;
}

/* ------------------------------------------------------------ base64 */

char *b64_encode(const unsigned char *p, size_t n, int url, int pad)
{
    const char *tab =
        url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
              "/";
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

unsigned char *b64_decode(const char *s, size_t *outlen)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '=')
        n--;
    unsigned char *out = xmalloc(n * 3 / 4 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* ------------------------------------------------------------ text */

size_t count_words(const char *s, size_t n)
{
    size_t w = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = isspace((unsigned char)s[i]);
        if (!sp && !in)
            w++;
        in = !sp;
    }
    return w;
}

size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

size_t utf8_offset(const char *s, size_t n, size_t ci)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == ci)
                return i;
            c++;
        }
    }
    return n;
}

int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------ time */

double now_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* days since 1970-01-01 of a civil date (Howard Hinnant's algorithm) */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

/* weekday 0=Sunday of a day number */
static int weekday(long days)
{
    return (int)((days % 7 + 11) % 7);
}

/* Day number of the n-th Sunday of month m of year y. */
static long nth_sunday(long y, unsigned m, int n)
{
    long d1 = days_from_civil(y, m, 1);
    int wd = weekday(d1);
    long first = d1 + (7 - wd) % 7;
    return first + 7L * (n - 1);
}

static long pacific_offset(long t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    long y = tm.tm_year + 1900L;
    /* DST: second Sunday of March 02:00 PST (10:00 UTC) until first Sunday of
     * November 02:00 PDT (09:00 UTC). */
    long start = nth_sunday(y, 3, 2) * 86400L + 10 * 3600L;
    long end = nth_sunday(y, 11, 1) * 86400L + 9 * 3600L;
    return (t >= start && t < end) ? -7 * 3600L : -8 * 3600L;
}

long pacific_day(long t)
{
    long local = t + pacific_offset(t);
    return local >= 0 ? local / 86400 : (local - 86399) / 86400;
}

long secs_to_pacific_midnight(long t)
{
    long local = t + pacific_offset(t);
    long day = pacific_day(t);
    return (day + 1) * 86400 - local;
}

void rfc3339(char *out, size_t cap, double t)
{
    time_t s = (time_t)t;
    long us = (long)((t - (double)s) * 1e6);
    if (us < 0)
        us = 0;
    if (us > 999999)
        us = 999999;
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[40];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%06ldZ", base, us);
}

/* ------------------------------------------------------------ JSON */

const char *to_snake(const char *camel, char *buf, size_t cap)
{
    size_t o = 0;
    for (const char *p = camel; *p && o + 2 < cap; p++) {
        if (isupper((unsigned char)*p)) {
            buf[o++] = '_';
            buf[o++] = (char)tolower((unsigned char)*p);
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

json_t *jget(const json_t *o, const char *camel)
{
    if (!json_is_object(o))
        return NULL;
    json_t *v = json_object_get(o, camel);
    if (v)
        return v;
    char buf[128];
    to_snake(camel, buf, sizeof buf);
    if (strcmp(buf, camel) == 0)
        return NULL;
    return json_object_get(o, buf);
}

const char *jstr(const json_t *o, const char *camel)
{
    json_t *v = jget(o, camel);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return evbuffer_add((struct evbuffer *)data, buffer, size);
}

int json_to_evbuffer(const json_t *j, struct evbuffer *out, int pretty)
{
    size_t flags = JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    return json_dump_callback(j, dump_cb, out, flags);
}

char *json_to_str(const json_t *j, int pretty, size_t *len)
{
    size_t flags = JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    char *s = json_dumps(j, flags);
    if (!s)
        s = xstrdup("null");
    if (len)
        *len = strlen(s);
    return s;
}

long jlong(json_t *o, const char *k, long def)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_real(v))
        return (long)json_real_value(v);
    return def;
}

/* Returns the decoded value of query parameter name, or NULL. */
char *query_get(const char *q, const char *name)
{
    size_t nl = strlen(name);
    const char *p = q;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t kl = eq ? (size_t)(eq - p) : seg;
        char *k = xstrndup(p, kl);
        char *kd = evhttp_uridecode(k, 1, NULL);
        free(k);
        int match = kd && strlen(kd) == nl && !memcmp(kd, name, nl);
        free(kd);
        if (match) {
            char *raw = eq ? xstrndup(eq + 1, seg - kl - 1) : xstrdup("");
            char *val = evhttp_uridecode(raw, 1, NULL);
            free(raw);
            return val;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}
