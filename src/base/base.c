/* base: implementation. See base.h for the contracts. */
#include "base/base.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---------------------------------------------------------------- */
uint64_t cu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t cu_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- memory -------------------------------------------------------------- */
static void oom(size_t n)
{
    fprintf(stderr, "cutover: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *cu_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *cu_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *cu_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *cu_strdup(const char *s)
{
    return cu_strndup(s, strlen(s));
}

char *cu_strndup(const char *s, size_t n)
{
    char *p = cu_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cu_asprintf(const char *fmt, ...)
{
    cu_buf b = CU_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    cu_buf_vappendf(&b, fmt, ap);
    va_end(ap);
    return cu_buf_steal(&b);
}

/* ---- buffer -------------------------------------------------------------- */
void cu_buf_reserve(cu_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = cu_realloc(b->data, cap);
    b->cap = cap;
}

void cu_buf_append(cu_buf *b, const void *p, size_t n)
{
    cu_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cu_buf_appends(cu_buf *b, const char *s)
{
    cu_buf_append(b, s, strlen(s));
}

void cu_buf_appendc(cu_buf *b, char c)
{
    cu_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void cu_buf_vappendf(cu_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        cu_buf_append(b, small, (size_t)n);
        return;
    }
    cu_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void cu_buf_appendf(cu_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cu_buf_vappendf(b, fmt, ap);
    va_end(ap);
}

void cu_buf_append_u64(cu_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    cu_buf_append(b, tmp + i, sizeof tmp - i);
}

void cu_buf_reset(cu_buf *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void cu_buf_free(cu_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *cu_buf_steal(cu_buf *b)
{
    if (!b->data)
        return cu_strdup("");
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- rng: xoshiro256** seeded through splitmix64 ------------------------- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cu_rng_seed(cu_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cu_rng_next(cu_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cu_rng_double(cu_rng *r)
{
    return (double)(cu_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t cu_rng_below(cu_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Lemire's multiply-shift; the bias for n << 2^64 is negligible here. */
    return (uint64_t)(((unsigned __int128)cu_rng_next(r) * n) >> 64);
}

uint64_t cu_seed_entropy(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t x = cu_now_ns() ^ ((uint64_t)getpid() << 32) ^
                 (uint64_t)cu_wall_ms() ^ (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull);
    return splitmix64(&x);
}

/* ---- strings ------------------------------------------------------------- */
bool cu_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool cu_strcaseeq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcasecmp(a, b) == 0;
}

bool cu_memcaseeq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

bool cu_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int cu_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t cu_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = cu_malloc((lb + 1) * sizeof *row);
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = CU_MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = CU_MIN(best, diag + cost);
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

const char *cu_nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t limit = CU_MAX((size_t)2, strlen(word) / 3);
    for (size_t i = 0; i < n; i++) {
        size_t d = cu_edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

/* ---- logging ------------------------------------------------------------- */
static atomic_int log_level = CU_LOG_INFO;

void cu_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int cu_log_level(void)
{
    return atomic_load(&log_level);
}

static atomic_size_t log_counts[4];

size_t cu_log_count(int level)
{
    return level >= 0 && level <= 3 ? atomic_load(&log_counts[level]) : 0;
}

void cu_log(int level, const char *fmt, ...)
{
    if (level > atomic_load(&log_level))
        return;
    atomic_fetch_add(&log_counts[level < 0 ? 0 : level > 3 ? 3 : level], 1);
    static const char *const names[] = {"error", "warning", "info", "debug"};
    cu_buf b = CU_BUF_INIT;
    cu_buf_appendf(&b, "cutover: %s: ", names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    cu_buf_vappendf(&b, fmt, ap);
    va_end(ap);
    cu_buf_appendc(&b, '\n');
    fwrite(b.data, 1, b.len, stderr); /* one write: lines from threads stay whole */
    cu_buf_free(&b);
}

/* ---- files --------------------------------------------------------------- */
int cu_read_file(const char *path, cu_buf *out, char err[CU_ERRLEN])
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, CU_ERRLEN, "%s: %s", path, strerror(e));
        return -e;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cu_buf_append(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, CU_ERRLEN, "%s: read error", path);
        return -EIO;
    }
    if (out->cap == 0)
        cu_buf_reserve(out, 0);
    return 0;
}

int cu_write_file(const char *path, const void *data, size_t len)
{
    char *tmp = cu_asprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len))
        rc = errno ? -errno : -EIO;
    if (f && fclose(f) != 0 && rc == 0)
        rc = errno ? -errno : -EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

char *cu_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cu_strdup(".");
    if (slash == path)
        return cu_strdup("/");
    return cu_strndup(path, (size_t)(slash - path));
}

char *cu_path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !dir[0])
        return cu_strdup(rel);
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    return cu_asprintf("%s/%s", dir, rel);
}
