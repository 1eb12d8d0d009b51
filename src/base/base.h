/* base: what every other module stands on. Depends on nothing but libc.
 *
 * - time: a monotonic clock in nanoseconds and the wall clock in milliseconds;
 * - memory: allocation that aborts on exhaustion (a load generator that
 *   half-works after ENOMEM lies; we stop loudly instead);
 * - cu_buf: a growable byte buffer, the one way we build strings and bodies;
 * - cu_rng: a small, fast per-thread PRNG (xoshiro256**), never shared;
 * - strings: edit distance and nearest-word lookup for "did you mean" hints;
 * - logging to stderr, with a process-wide level set once at start-up.
 *
 * Error convention for the whole project: 0 on success, a negative
 * errno-style code on failure. Set-up functions that can fail for reasons a
 * person must read fill a caller-owned `char err[CU_ERRLEN]`.
 * Thread rules: everything here is thread-safe except a cu_buf or cu_rng
 * used from two threads at once (each belongs to one owner).
 */
#ifndef CUTOVER_BASE_H
#define CUTOVER_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CU_ERRLEN 512
#define CU_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CU_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CU_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- time ---------------------------------------------------------------- */
/* Monotonic nanoseconds (CLOCK_MONOTONIC); only differences mean anything. */
uint64_t cu_now_ns(void);
/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t cu_wall_ms(void);

/* ---- memory -------------------------------------------------------------- */
void *cu_malloc(size_t n);
void *cu_calloc(size_t count, size_t size);
void *cu_realloc(void *p, size_t n);
char *cu_strdup(const char *s);
char *cu_strndup(const char *s, size_t n);
/* printf into a freshly allocated string. */
char *cu_asprintf(const char *fmt, ...) CU_PRINTF(1, 2);

/* ---- growable buffer ----------------------------------------------------- */
/* Invariant: data is NUL-terminated at data[len] whenever cap > 0, so a
 * buffer holding text can be passed as a C string. */
typedef struct cu_buf {
    char *data;
    size_t len;
    size_t cap;
} cu_buf;

#define CU_BUF_INIT {NULL, 0, 0}
void cu_buf_reserve(cu_buf *b, size_t extra);        /* room for len+extra+1 */
void cu_buf_append(cu_buf *b, const void *p, size_t n);
void cu_buf_appends(cu_buf *b, const char *s);
void cu_buf_appendc(cu_buf *b, char c);
/* Decimal digits of v, without printf (hot paths: Content-Length). */
void cu_buf_append_u64(cu_buf *b, uint64_t v);
void cu_buf_appendf(cu_buf *b, const char *fmt, ...) CU_PRINTF(2, 3);
void cu_buf_vappendf(cu_buf *b, const char *fmt, va_list ap);
void cu_buf_reset(cu_buf *b);                        /* len = 0, keeps memory */
void cu_buf_free(cu_buf *b);
/* Hands the data to the caller (never NULL) and leaves b empty. */
char *cu_buf_steal(cu_buf *b);

/* ---- random numbers ------------------------------------------------------ */
typedef struct cu_rng {
    uint64_t s[4];
} cu_rng;

void cu_rng_seed(cu_rng *r, uint64_t seed);
uint64_t cu_rng_next(cu_rng *r);
/* Uniform in [0, 1). */
double cu_rng_double(cu_rng *r);
/* Uniform integer in [0, n); n == 0 gives 0. */
uint64_t cu_rng_below(cu_rng *r, uint64_t n);
/* A seed that differs between processes and calls (time, pid, counter). */
uint64_t cu_seed_entropy(void);

/* ---- strings ------------------------------------------------------------- */
bool cu_streq(const char *a, const char *b);          /* NULL-safe */
bool cu_strcaseeq(const char *a, const char *b);
bool cu_memcaseeq(const char *a, size_t alen, const char *b);
bool cu_startswith(const char *s, const char *prefix);
/* The value of one hex digit (either case), -1 for any other character. */
int cu_hexval(char c);
/* Levenshtein distance between two strings. */
size_t cu_edit_distance(const char *a, const char *b);
/* The candidate closest to `word`, or NULL when none is close enough to be
 * a plausible typo (distance <= max(2, len/3)). */
const char *cu_nearest(const char *word, const char *const *cands, size_t n);

/* ---- logging ------------------------------------------------------------- */
enum { CU_LOG_ERROR = 0, CU_LOG_WARN = 1, CU_LOG_INFO = 2, CU_LOG_DEBUG = 3 };
void cu_log_set_level(int level);
int cu_log_level(void);
void cu_log(int level, const char *fmt, ...) CU_PRINTF(2, 3);
/* Messages of `level` printed so far, process-wide (for `cutover lint`'s
 * summary line). */
size_t cu_log_count(int level);
#define cu_error(...) cu_log(CU_LOG_ERROR, __VA_ARGS__)
#define cu_warn(...) cu_log(CU_LOG_WARN, __VA_ARGS__)
#define cu_info(...) cu_log(CU_LOG_INFO, __VA_ARGS__)
#define cu_debug(...) cu_log(CU_LOG_DEBUG, __VA_ARGS__)

/* ---- files --------------------------------------------------------------- */
/* Reads a whole file. Returns 0, or a negative errno with err filled. */
int cu_read_file(const char *path, cu_buf *out, char err[CU_ERRLEN]);
/* Writes a whole file atomically: into "<path>.tmp.<pid>", then renamed
 * over path, so readers (tests polling a port file, a browser opening a
 * report) never see a partial file. Returns 0 or a negative errno. */
int cu_write_file(const char *path, const void *data, size_t len);
/* Directory part of a path ("." when none), freshly allocated. */
char *cu_dirname(const char *path);
/* `rel` resolved against directory `dir` unless absolute; allocated. */
char *cu_path_join(const char *dir, const char *rel);

#endif
