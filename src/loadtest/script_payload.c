/* loadtest/script_payload.c: config.payload, CSV files whose rows become
 * variables (notes 1.4), and the RFC 4180 reader behind it.
 *
 * Each payload is read once at load: `path` relative to the script's
 * directory; `fields` name the columns in order; `skipHeader` drops the
 * first record; `delimiter` (one byte, default ","); `skipEmptyLines`
 * (default true) drops records of an empty line; `cast` (default true)
 * turns cells that read as decimal numbers into numbers, as csv-parse's
 * cast does; `loadAll: true` with `name: X` makes X the whole file (a list
 * of objects keyed by fields, or of lists without fields). The rows are
 * kept as JSON (lt_payload.rows), so a user's pick only takes references.
 * Choosing a row per user (`order: random`, the default, or `sequence`)
 * is the engine's (vu.c).
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RFC 4180 ------------------------------------------------------------------------------- */
/* "12", "-1.5", " 3e2 ": what csv-parse's cast turns into a number
 * (JavaScript's `value - parseFloat(value) + 1 >= 0`, decimal only). */
static bool cast_number(const char *s, size_t n, double *out)
{
    char buf[64];
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    if (i == n || n - i >= sizeof buf)
        return false;
    for (size_t k = i; k < n; k++)
        if (!strchr("0123456789+-.eE", s[k]))
            return false;
    memcpy(buf, s + i, n - i);
    buf[n - i] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static json_t *cell(const char *s, size_t n, bool cast)
{
    double v;
    if (cast && cast_number(s, n, &v)) {
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
            return json_integer((json_int_t)v);
        return json_real(v);
    }
    return json_stringn_nocheck(s, n);
}

json_t *lt_csv_parse(const char *text, size_t len, char delim, bool skip_empty, bool cast,
                     char err[CU_ERRLEN])
{
    json_t *rows = json_array(), *row = NULL;
    cu_buf f = CU_BUF_INIT;
    size_t i = 0;
    int line = 1;
    while (i < len) {
        /* a record starts here */
        if (skip_empty && (text[i] == '\n' || (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n'))) {
            i += text[i] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        row = json_array();
        int rec_line = line;
        for (;;) { /* one field */
            cu_buf_reset(&f);
            if (i < len && text[i] == '"') {
                i++;
                for (;;) {
                    if (i >= len) {
                        snprintf(err, CU_ERRLEN, "line %d: quoted field not terminated", rec_line);
                        goto fail;
                    }
                    if (text[i] == '"') {
                        if (i + 1 < len && text[i + 1] == '"') {
                            cu_buf_appendc(&f, '"');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (text[i] == '\n')
                        line++;
                    cu_buf_appendc(&f, text[i++]);
                }
                if (i < len && text[i] != delim && text[i] != '\n' &&
                    !(text[i] == '\r' && (i + 1 == len || text[i + 1] == '\n'))) {
                    snprintf(err, CU_ERRLEN, "line %d: invalid closing quote: '%c' after a quoted "
                             "field", line, text[i]);
                    goto fail;
                }
            } else {
                while (i < len && text[i] != delim && text[i] != '\n' &&
                       !(text[i] == '\r' && (i + 1 == len || text[i + 1] == '\n'))) {
                    if (text[i] == '"') {
                        snprintf(err, CU_ERRLEN, "line %d: quote inside an unquoted field "
                                 "(quote the whole field and double the quote)", line);
                        goto fail;
                    }
                    cu_buf_appendc(&f, text[i++]);
                }
            }
            json_array_append_new(row, cell(f.data ? f.data : "", f.len, cast)); /* quoted too */
            if (i < len && text[i] == delim) { /* "a," ends with one more, empty field */
                i++;
                continue;
            }
            break;
        }
        if (i < len && text[i] == '\r')
            i++;
        if (i < len && text[i] == '\n') {
            i++;
            line++;
        }
        json_array_append_new(rows, row);
        row = NULL;
    }
    cu_buf_free(&f);
    return rows;
fail:
    cu_buf_free(&f);
    json_decref(row);
    json_decref(rows);
    return NULL;
}

/* ---- config.payload ------------------------------------------------------------------------- */
static const char *const payload_keys[] = {"path", "fields", "order", "skipHeader", "delimiter",
    "skipEmptyLines", "cast", "loadAll", "name", "options"};

static int flag(lt_loader *L, const conf_node *p, const char *key, bool *out)
{
    const conf_node *v = conf_get(p, key);
    if (!v)
        return 0;
    if (v->type != CONF_BOOL) {
        conf_errf(L->err, v, "payload %s must be true or false", key);
        return -EINVAL;
    }
    *out = v->b;
    return 0;
}

static int compile_payload(lt_loader *L, const conf_node *n, lt_payload *p)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a payload must be a map such as {path: users.csv, fields: [id]} (got a %s)",
                  conf_type_name(n->type));
        return -EINVAL;
    }
    conf_check_keys(n, payload_keys, CU_ARRAY_LEN(payload_keys), "payload");
    const conf_node *path = conf_get(n, "path"), *fields = conf_get(n, "fields");
    const conf_node *order = conf_get(n, "order"), *delim = conf_get(n, "delimiter");
    const conf_node *name = conf_get(n, "name"), *v;
    bool skip_header = false, skip_empty = true, cast = true, load_all = false;
    if (!path || path->type != CONF_STRING || !*path->str) {
        conf_errf(L->err, path ? path : n, "a payload needs a path: the CSV file, relative to the script");
        return -EINVAL;
    }
    if (flag(L, n, "skipHeader", &skip_header) || flag(L, n, "skipEmptyLines", &skip_empty) ||
        flag(L, n, "cast", &cast) || flag(L, n, "loadAll", &load_all))
        return -EINVAL;
    char d = ',';
    if (delim) {
        if (delim->type != CONF_STRING || strlen(delim->str) != 1) {
            conf_errf(L->err, delim, "payload delimiter must be one character such as \";\"");
            return -EINVAL;
        }
        d = delim->str[0];
        if (d == '"' || d == '\n' || d == '\r') {
            conf_errf(L->err, delim, "payload delimiter cannot be a quote or a line break");
            return -EINVAL;
        }
    }
    if (order) {
        if (order->type == CONF_STRING && !strcmp(order->str, "sequence"))
            p->sequence = true;
        else if (!(order->type == CONF_STRING && !strcmp(order->str, "random"))) {
            conf_errf(L->err, order, "payload order must be random or sequence");
            return -EINVAL;
        }
    }
    if (fields) {
        if (fields->type != CONF_SEQ) {
            conf_errf(L->err, fields, "payload fields must be a list of names");
            return -EINVAL;
        }
        p->fields = cu_calloc(fields->n ? fields->n : 1, sizeof *p->fields);
        for (size_t i = 0; i < fields->n; i++) {
            if (!conf_is_scalar(fields->items[i]) || fields->items[i]->type == CONF_NULL) {
                conf_errf(L->err, fields->items[i], "payload field names must be strings");
                return -EINVAL;
            }
            cu_buf b = CU_BUF_INIT;
            lt_scalar_text(&b, fields->items[i]);
            p->fields[p->nfields++] = cu_buf_steal(&b);
        }
    }
    if ((v = conf_get(n, "options")))
        conf_warnf(v, "payload options (raw csv-parse options) are not supported by cutover and are "
                   "ignored");
    if (load_all) {
        if (name && name->type == CONF_STRING && *name->str)
            p->name = cu_strdup(name->str);
        else
            conf_warnf(conf_get(n, "loadAll"), "loadAll needs a name: the variable to hold the rows; "
                       "ignored, as Artillery does");
    }
    if (!p->name && !p->nfields)
        conf_warnf(n, "payload %s has no fields: its columns set no variables", path->str);

    p->path = cu_path_join(L->s->dir, path->str);
    cu_buf text = CU_BUF_INIT;
    char e[CU_ERRLEN];
    if (cu_read_file(p->path, &text, e) != 0) {
        conf_errf(L->err, path, "payload: cannot read %s", e);
        cu_buf_free(&text);
        return -EINVAL;
    }
    p->rows = lt_csv_parse(text.data ? text.data : "", text.len, d, skip_empty, cast, e);
    cu_buf_free(&text);
    if (!p->rows) {
        conf_errf(L->err, path, "payload %s, %s", p->path, e);
        return -EINVAL;
    }
    if (skip_header && json_array_size(p->rows) > 0)
        json_array_remove(p->rows, 0);
    if (p->name) {
        json_t *all = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(p->rows, i, row) {
            if (!p->nfields) {
                json_array_append(all, row);
                continue;
            }
            json_t *o = json_object();
            for (size_t f = 0; f < p->nfields && f < json_array_size(row); f++)
                json_object_set(o, p->fields[f], json_array_get(row, f));
            json_array_append_new(all, o);
        }
        p->all = all;
    }
    return 0;
}

int lt_payloads_compile(lt_loader *L, const conf_node *n)
{
    lt_script *s = L->s;
    if (!n || n->type == CONF_NULL)
        return 0;
    size_t count = n->type == CONF_SEQ ? n->n : 1;
    s->payloads = cu_calloc(count ? count : 1, sizeof *s->payloads);
    for (size_t i = 0; i < count; i++) {
        s->npayloads++;
        if (compile_payload(L, n->type == CONF_SEQ ? n->items[i] : n, &s->payloads[i]) != 0)
            return -EINVAL;
    }
    return 0;
}

bool lt_payload_defines(const lt_script *s, const char *name)
{
    for (size_t i = 0; i < s->npayloads; i++) {
        const lt_payload *p = &s->payloads[i];
        if (p->name && !strcmp(p->name, name))
            return true;
        for (size_t f = 0; !p->name && f < p->nfields; f++)
            if (!strcmp(p->fields[f], name))
                return true;
    }
    return false;
}

void lt_payloads_free(lt_payload *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < p[i].nfields; f++)
            free(p[i].fields[f]);
        free(p[i].fields);
        free(p[i].path);
        free(p[i].name);
        json_decref(p[i].rows);
        json_decref(p[i].all);
    }
    free(p);
}
