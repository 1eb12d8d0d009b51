/* The journal: one SQLite file (WAL, synchronous=FULL) holding the rollout
 * state, every decision record, every weight change, per-minute per-colour
 * aggregates and the notification outbox.
 *
 * Invariants: a decision, the state it leads to, its weight change and its
 * outbox rows are written in one transaction, committed before the
 * controller acts; `acted` is set once the target accepted the weight, so a
 * decision with acted = 0 after a crash is re-acted (weight re-applied), never
 * re-decided. An outbox row is delivered when `delivered_ms` is set; rows of
 * one receiver are delivered in id order. One process holds the journal at a
 * time: an flock()ed "<path>.lock" beside it (released by the kernel when the
 * process dies, even by kill -9).
 * Thread rules: one thread (the controller's).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "rollout/internal.h"

struct rj {
    sqlite3 *db;
    int lock_fd;
    bool failing;   /* a statement failed: log again only once a COMMIT succeeds */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "INSERT OR IGNORE INTO meta VALUES('schema','1');"
    "CREATE TABLE IF NOT EXISTS state(id INTEGER PRIMARY KEY CHECK (id = 1), run INTEGER,"
    " state TEXT, step INTEGER, weight REAL, step_started_ms INTEGER, deadline_ms INTEGER,"
    " next_analysis_ms INTEGER, last_analysis_ms INTEGER, failures INTEGER, errors INTEGER,"
    " awaiting_approval INTEGER, hold_notified INTEGER, updated_ms INTEGER);"
    "CREATE TABLE IF NOT EXISTS decisions(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time_ms INTEGER, run INTEGER, step INTEGER, kind TEXT, verdict TEXT, action TEXT,"
    " weight REAL, state TEXT, record TEXT, acted INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS weights(id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER,"
    " run INTEGER, weight REAL, reason TEXT, decision INTEGER);"
    "CREATE TABLE IF NOT EXISTS minutes(minute_ms INTEGER, color TEXT, requests INTEGER,"
    " errors_5xx INTEGER, transport_errors INTEGER, seconds REAL, latency BLOB,"
    " PRIMARY KEY(minute_ms, color));"
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT,"
    " decision INTEGER, event TEXT NOT NULL, payload TEXT NOT NULL, created_ms INTEGER, delivered_ms INTEGER,"
    " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(receiver, delivered_ms, id);"
    /* rj_mark_acted and rj_unacted look only at the few unacted rows */
    "CREATE INDEX IF NOT EXISTS decisions_unacted ON decisions(seq) WHERE acted=0;";

static const char *const state_names[] = {"idle",     "progressing", "paused",
                                          "promoted", "rolled_back", "aborted"};

const char *rollout_state_name(rollout_state s)
{
    return (unsigned)s < CU_ARRAY_LEN(state_names) ? state_names[s] : "?";
}

/* The state named s, or -1 (unknown or NULL: a damaged journal). */
static int state_of(const char *s)
{
    for (size_t i = 0; s && i < CU_ARRAY_LEN(state_names); i++)
        if (strcmp(s, state_names[i]) == 0)
            return (int)i;
    return -1;
}

sqlite3 *rj_db(rj *j)
{
    return j->db;
}

static int exec(rj *j, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (!j->failing)
            cu_error("journal: %s: %s", sql, msg ? msg : "?");
        j->failing = true;
        sqlite3_free(msg);
        return -EIO;
    }
    if (strcmp(sql, "COMMIT") == 0)
        j->failing = false;
    return 0;
}

static sqlite3_stmt *prep(rj *j, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cu_error("journal: %s: %s", sql, sqlite3_errmsg(j->db));
        return NULL;
    }
    return st;
}

int rj_open(rj **out, const char *path, char err[CU_ERRLEN])
{
    *out = NULL;
    rj *j = cu_calloc(1, sizeof *j);
    char *lock = cu_asprintf("%s.lock", path);
    j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->lock_fd < 0) {
        int e = errno;
        snprintf(err, CU_ERRLEN, "%s: %s", lock, strerror(e));
        free(lock);
        free(j);
        return -e;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        snprintf(err, CU_ERRLEN, "%s: the journal is in use by another cutover process (%s)", path,
                 strerror(e));
        close(j->lock_fd);
        free(lock);
        free(j);
        return -EBUSY;
    }
    free(lock);
    int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, CU_ERRLEN, "%s: %s", path, j->db ? sqlite3_errmsg(j->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(j->db, 2000);
    /* PRAGMA journal_mode answers the mode in force, which is not WAL when
     * SQLite cannot use it (an in-memory database, no shared memory...):
     * the crash-safety promises need WAL, so refuse anything else */
    sqlite3_stmt *st = prep(j, "PRAGMA journal_mode=WAL;");
    const char *mode = st && sqlite3_step(st) == SQLITE_ROW
                           ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp(mode, "wal") != 0) {
        snprintf(err, CU_ERRLEN, "%s: the journal needs SQLite's WAL mode, but journal_mode is "
                 "'%s' (%s)", path, mode ? mode : "unknown", sqlite3_errmsg(j->db));
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    if (exec(j, "PRAGMA synchronous=FULL;") < 0 || exec(j, schema) < 0) {
        snprintf(err, CU_ERRLEN, "%s: cannot set up the journal: %s", path, sqlite3_errmsg(j->db));
        goto fail;
    }
    *out = j;
    return 0;
fail:
    sqlite3_close(j->db);
    close(j->lock_fd);
    free(j);
    return -EIO;
}

void rj_close(rj *j)
{
    if (!j)
        return;
    sqlite3_close(j->db);
    close(j->lock_fd);
    free(j);
}

static int step_done(rj *j, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cu_error("journal: %s", sqlite3_errmsg(j->db));
        return -EIO;
    }
    return 0;
}

int rj_load_state(rj *j, rj_state *s, char err[CU_ERRLEN])
{
    sqlite3_stmt *st = prep(j, "SELECT run, state, step, weight, step_started_ms, deadline_ms,"
                               " next_analysis_ms, last_analysis_ms, failures, errors,"
                               " awaiting_approval, hold_notified, updated_ms FROM state WHERE id=1");
    if (!st) {
        snprintf(err, CU_ERRLEN, "cannot read the rollout state: %s", sqlite3_errmsg(j->db));
        return -EIO;
    }
    int found = 0;
    memset(s, 0, sizeof *s);
    s->step = -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        /* an unreadable state row is not a new journal: opening idle would
         * drop a rollout half-way and leave the router's weight alone */
        snprintf(err, CU_ERRLEN, "cannot read the rollout state: %s", sqlite3_errmsg(j->db));
        sqlite3_finalize(st);
        return -EIO;
    }
    if (rc == SQLITE_ROW) {
        found = 1;
        const char *name = (const char *)sqlite3_column_text(st, 1);
        s->state = state_of(name);
        if (s->state < 0) {
            snprintf(err, CU_ERRLEN, "the rollout state row names an unknown state '%.40s' "
                     "(states: idle, progressing, paused, promoted, rolled_back, aborted): "
                     "the journal is damaged", name ? name : "NULL");
            sqlite3_finalize(st);
            return -EINVAL;
        }
        s->run = sqlite3_column_int64(st, 0);
        s->step = sqlite3_column_int(st, 2);
        s->weight = sqlite3_column_double(st, 3);
        s->step_started_ms = sqlite3_column_int64(st, 4);
        s->deadline_ms = sqlite3_column_int64(st, 5);
        s->next_analysis_ms = sqlite3_column_int64(st, 6);
        s->last_analysis_ms = sqlite3_column_int64(st, 7);
        s->failures = (unsigned)sqlite3_column_int(st, 8);
        s->errors = (unsigned)sqlite3_column_int(st, 9);
        s->awaiting_approval = sqlite3_column_int(st, 10) != 0;
        s->hold_notified = sqlite3_column_int(st, 11) != 0;
        s->updated_ms = sqlite3_column_int64(st, 12);
    }
    sqlite3_finalize(st);
    return found;
}

int rj_begin(rj *j)
{
    return exec(j, "BEGIN IMMEDIATE");
}

int rj_commit(rj *j)
{
    return exec(j, "COMMIT");
}

void rj_rollback(rj *j)
{
    exec(j, "ROLLBACK");
}

int rj_put_state(rj *j, const rj_state *s)
{
    sqlite3_stmt *st = prep(j, "INSERT OR REPLACE INTO state VALUES(1,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, s->run);
    sqlite3_bind_text(st, 2, rollout_state_name((rollout_state)s->state), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, s->step);
    sqlite3_bind_double(st, 4, s->weight);
    sqlite3_bind_int64(st, 5, s->step_started_ms);
    sqlite3_bind_int64(st, 6, s->deadline_ms);
    sqlite3_bind_int64(st, 7, s->next_analysis_ms);
    sqlite3_bind_int64(st, 8, s->last_analysis_ms);
    sqlite3_bind_int(st, 9, (int)s->failures);
    sqlite3_bind_int(st, 10, (int)s->errors);
    sqlite3_bind_int(st, 11, s->awaiting_approval);
    sqlite3_bind_int(st, 12, s->hold_notified);
    sqlite3_bind_int64(st, 13, s->updated_ms);
    return step_done(j, st);
}

int rj_add_decision(rj *j, int64_t time_ms, const rj_state *s, const char *kind,
                    const char *verdict, const char *action, const char *record, int64_t *seq)
{
    sqlite3_stmt *st = prep(j, "INSERT INTO decisions(time_ms, run, step, kind, verdict, action,"
                               " weight, state, record) VALUES(?,?,?,?,?,?,?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, time_ms);
    sqlite3_bind_int64(st, 2, s->run);
    sqlite3_bind_int(st, 3, s->step);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, verdict, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, action, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 7, s->weight);
    sqlite3_bind_text(st, 8, rollout_state_name((rollout_state)s->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, record, -1, SQLITE_STATIC);
    int rc = step_done(j, st);
    if (rc == 0 && seq)
        *seq = sqlite3_last_insert_rowid(j->db);
    return rc;
}

int rj_add_weight(rj *j, int64_t time_ms, int64_t run, double weight, const char *reason,
                  int64_t seq)
{
    sqlite3_stmt *st = prep(j, "INSERT INTO weights(time_ms, run, weight, reason, decision)"
                               " VALUES(?,?,?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, time_ms);
    sqlite3_bind_int64(st, 2, run);
    sqlite3_bind_double(st, 3, weight);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, seq);
    return step_done(j, st);
}

int rj_outbox_add(rj *j, const char *receiver, int64_t seq, const char *event,
                  const char *payload, int64_t time_ms)
{
    sqlite3_stmt *st = prep(j, "INSERT INTO outbox(receiver, decision, event, payload, created_ms)"
                               " VALUES(?,?,?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, receiver, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, time_ms);
    return step_done(j, st);
}

int rj_mark_acted(rj *j, int64_t seq)
{
    sqlite3_stmt *st = prep(j, "UPDATE decisions SET acted=1 WHERE seq<=? AND acted=0");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, seq);
    return step_done(j, st);
}

int rj_unacted(rj *j, int64_t *seqs, size_t max, size_t *n_out)
{
    *n_out = 0;
    sqlite3_stmt *st = prep(j, "SELECT seq FROM decisions WHERE acted=0 ORDER BY seq");
    size_t n = 0;
    if (!st)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n < max)
            seqs[n] = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cu_error("journal: reading unacted decisions: %s", sqlite3_errmsg(j->db));
        return -EIO;
    }
    *n_out = CU_MIN(n, max);
    return 0;
}

uint64_t rj_decision_count(rj *j)
{
    sqlite3_stmt *st = prep(j, "SELECT count(*) FROM decisions");
    uint64_t n = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int rj_outbox_next(rj *j, const char *receiver, rj_outbox_row *row)
{
    memset(row, 0, sizeof *row);
    /* a bad row (no event or payload: a journal older than the NOT NULL
     * constraint) is set aside with delivered_ms = 0 and last_error, so it
     * neither crashes the pump nor holds back the receiver's later rows */
    for (int bad = 0; bad < 100; bad++) {
        sqlite3_stmt *st = prep(j, "SELECT id, event, payload, attempts FROM outbox WHERE"
                                   " receiver=? AND delivered_ms IS NULL ORDER BY id LIMIT 1");
        if (!st)
            return -EIO;
        sqlite3_bind_text(st, 1, receiver, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            sqlite3_finalize(st);
            return 0;
        }
        if (rc != SQLITE_ROW) {
            cu_error("journal: reading the outbox: %s", sqlite3_errmsg(j->db));
            sqlite3_finalize(st);
            return -EIO;
        }
        row->id = sqlite3_column_int64(st, 0);
        const char *ev = (const char *)sqlite3_column_text(st, 1);
        const char *pl = (const char *)sqlite3_column_text(st, 2);
        if (ev && pl) {
            row->event = cu_strdup(ev);
            row->payload = cu_strdup(pl);
            row->attempts = sqlite3_column_int(st, 3);
            sqlite3_finalize(st);
            return 1;
        }
        sqlite3_finalize(st);
        cu_error("journal: outbox row %lld for %s has no %s: set aside, not delivered",
                 (long long)row->id, receiver, ev ? "payload" : "event");
        st = prep(j, "UPDATE outbox SET delivered_ms=0, last_error='bad row: no event or payload,"
                     " not delivered' WHERE id=?");
        if (!st)
            return -EIO;
        sqlite3_bind_int64(st, 1, row->id);
        if (step_done(j, st) < 0)
            return -EIO;
        row->id = 0;
    }
    return 0;
}

void rj_outbox_row_free(rj_outbox_row *row)
{
    free(row->event);
    free(row->payload);
    row->event = row->payload = NULL;
}

int rj_outbox_done(rj *j, int64_t id, int64_t time_ms)
{
    sqlite3_stmt *st = prep(j, "UPDATE outbox SET delivered_ms=?, attempts=attempts+1 WHERE id=?");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, time_ms);
    sqlite3_bind_int64(st, 2, id);
    return step_done(j, st);
}

int rj_outbox_failed(rj *j, int64_t id, const char *error)
{
    sqlite3_stmt *st = prep(j, "UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    return step_done(j, st);
}

int rj_minute_put(rj *j, int64_t minute_ms, const char *color, const rollout_sample *s)
{
    cu_buf blob = CU_BUF_INIT;
    rollout_hist_encode(&s->latency_ms, &blob);
    sqlite3_stmt *st = prep(j, "INSERT OR REPLACE INTO minutes VALUES(?,?,?,?,?,?,?)");
    if (!st) {
        cu_buf_free(&blob);
        return -EIO;
    }
    sqlite3_bind_int64(st, 1, minute_ms);
    sqlite3_bind_text(st, 2, color, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)s->requests);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)s->errors_5xx);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)s->transport_errors);
    sqlite3_bind_double(st, 6, s->seconds);
    sqlite3_bind_blob(st, 7, blob.data ? blob.data : "", (int)blob.len, SQLITE_TRANSIENT);
    int rc = step_done(j, st);
    cu_buf_free(&blob);
    return rc;
}

json_t *rj_decisions_json(rj *j, size_t limit)
{
    json_t *arr = rj_decisions_json_db(j->db, limit);
    return arr ? arr : json_array();
}

json_t *rj_decisions_json_db(sqlite3 *db, size_t limit)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT * FROM (SELECT seq, time_ms, run, step, kind, verdict,"
                               " action, weight, state, record, acted FROM decisions ORDER BY seq"
                               " DESC LIMIT ?) ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    json_t *arr = json_array();
    sqlite3_bind_int64(st, 1, limit ? (sqlite3_int64)limit : -1);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char iso[40];
        rj_iso_time(sqlite3_column_int64(st, 1), iso, sizeof iso);
        json_t *rec = json_loads((const char *)sqlite3_column_text(st, 9), 0, NULL);
        json_t *o = json_pack("{s:I,s:I,s:s,s:I,s:i,s:s,s:s,s:s,s:f,s:s,s:b}", "seq",
                              (json_int_t)sqlite3_column_int64(st, 0), "time_ms",
                              (json_int_t)sqlite3_column_int64(st, 1), "time", iso, "run",
                              (json_int_t)sqlite3_column_int64(st, 2), "step",
                              sqlite3_column_int(st, 3) + 1, "kind",
                              (const char *)sqlite3_column_text(st, 4), "verdict",
                              (const char *)sqlite3_column_text(st, 5), "action",
                              (const char *)sqlite3_column_text(st, 6), "weight",
                              sqlite3_column_double(st, 7), "state",
                              (const char *)sqlite3_column_text(st, 8), "acted",
                              sqlite3_column_int(st, 10) != 0);
        if (o) {
            json_object_set_new(o, "record", rec ? rec : json_null());
            json_array_append_new(arr, o);
        } else {
            json_decref(rec);
        }
    }
    sqlite3_finalize(st);
    return arr;
}

void rj_iso_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char s[32];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03dZ", s, (int)(ms % 1000));
}

/* ---- histogram serialization -------------------------------------------------
 * Version 1: "H1", then varints: count, zero_count, offset (zigzag), number
 * of non-empty bins; the sum, min and max as 8-byte little-endian doubles;
 * then (gap from the previous non-empty index, count) varint pairs. */
static void put_varint(cu_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        cu_buf_appendc(b, (char)(v | 0x80));
        v >>= 7;
    }
    cu_buf_appendc(b, (char)v);
}

static void put_double(cu_buf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        cu_buf_appendc(b, (char)(u >> (8 * i)));
}

void rollout_hist_encode(const hist *h, cu_buf *out)
{
    cu_buf_append(out, "H1", 2);
    uint64_t nonzero = 0;
    for (uint32_t i = 0; h->bins && i < h->nbins; i++)
        nonzero += h->bins[i] != 0;
    put_varint(out, h->count);
    put_varint(out, h->zero_count);
    put_varint(out, ((uint64_t)(int64_t)h->offset << 1) ^ (uint64_t)((int64_t)h->offset >> 63));
    put_varint(out, nonzero);
    put_double(out, h->sum);
    put_double(out, h->min);
    put_double(out, h->max);
    uint32_t prev = 0;
    for (uint32_t i = 0; h->bins && i < h->nbins; i++) {
        if (!h->bins[i])
            continue;
        put_varint(out, i - prev);
        put_varint(out, h->bins[i]);
        prev = i;
    }
}

typedef struct rd {
    const unsigned char *p, *end;
    bool bad;
} rd;

static uint64_t get_varint(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static double get_double(rd *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    double d;
    memcpy(&d, &u, 8);
    return d;
}

int rollout_hist_decode(const void *data, size_t len, hist *h)
{
    rd r = {data, (const unsigned char *)data + len, false};
    if (len < 2 || memcmp(data, "H1", 2) != 0)
        return -EINVAL;
    r.p += 2;
    hist_reset(h);
    uint64_t count = get_varint(&r), zero = get_varint(&r), zz = get_varint(&r);
    uint64_t nonzero = get_varint(&r);
    int64_t offset = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    double sum = get_double(&r), mn = get_double(&r), mx = get_double(&r);
    if (r.bad || nonzero > len)
        return -EINVAL;
    /* the bins are laid out as stats.c keeps them: bins[i] counts key
     * offset + i, and nbins is the allocated length */
    uint64_t idx = 0;
    uint32_t maxidx = 0;
    uint64_t *bins = NULL;
    size_t cap = 0;
    for (uint64_t k = 0; k < nonzero; k++) {
        idx += get_varint(&r);
        uint64_t c = get_varint(&r);
        if (r.bad || idx > (1u << 20)) {
            free(bins);
            return -EINVAL;
        }
        if (idx >= cap) {
            size_t nc = CU_MAX(cap * 2, (size_t)idx + 16);
            bins = cu_realloc(bins, nc * sizeof *bins);
            memset(bins + cap, 0, (nc - cap) * sizeof *bins);
            cap = nc;
        }
        bins[idx] = c;
        maxidx = (uint32_t)idx;
    }
    free(h->bins);
    h->bins = NULL;
    h->nbins = 0;
    if (nonzero) {
        h->nbins = maxidx + 1;
        h->bins = bins;
    } else {
        free(bins);
    }
    h->offset = (int32_t)offset;
    h->count = count;
    h->zero_count = zero;
    h->sum = sum;
    h->min = mn;
    h->max = mx;
    return 0;
}
