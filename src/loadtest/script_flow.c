/* loadtest/script_flow.c: scenarios' flows, from YAML nodes to lt_step.
 *
 * Validation follows Artillery's (packages/artillery/lib/util/validate-script.js):
 * a step has exactly one action key (a `loop` may carry count/over/whileTrue);
 * HTTP steps are compiled by script_req.c. `parallel` steps are inlined in
 * order: Artillery's per-user agent has one socket per origin, so they ran
 * one after the other there too. Nested lists (YAML aliases) are flattened
 * one level as Artillery does. On error the partly built steps stay in
 * *out / *n for lt_steps_free.
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers shared with script.c ------------------------------------------------- */
void lt_scalar_text(cu_buf *out, const conf_node *n)
{
    switch (n->type) {
    case CONF_NULL: cu_buf_appends(out, "null"); break;
    case CONF_BOOL: cu_buf_appends(out, n->b ? "true" : "false"); break;
    case CONF_INT: cu_buf_appendf(out, "%lld", n->i); break;
    case CONF_FLOAT: lt_js_number(out, n->f); break;
    default: cu_buf_appends(out, n->str ? n->str : ""); break;
    }
}

lt_tmpl *lt_loader_tmpl(lt_loader *L, const conf_node *n, const char *what)
{
    if (!conf_is_scalar(n)) {
        conf_errf(L->err, n, "%s must be a string (got a %s)", what, conf_type_name(n->type));
        return NULL;
    }
    cu_buf b = CU_BUF_INIT;
    lt_scalar_text(&b, n);
    lt_tmpl *t = lt_tmpl_compile(b.data ? b.data : "");
    cu_buf_free(&b);
    return t;
}

void lt_kvs_free(lt_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        lt_tmpl_free(kv[i].value);
    }
    free(kv);
}

int lt_loader_kvs(lt_loader *L, const conf_node *map, const char *what, bool lower, lt_kv **out,
                  size_t *n)
{
    if (map->type != CONF_MAP) {
        conf_errf(L->err, map, "%s must be a map of names to values (got a %s)", what,
                  conf_type_name(map->type));
        return -EINVAL;
    }
    *out = cu_calloc(map->n ? map->n : 1, sizeof **out);
    for (size_t i = 0; i < map->n; i++) {
        lt_kv *kv = &(*out)[*n];
        char what2[160];
        snprintf(what2, sizeof what2, "%s.%s", what, conf_key(map, i));
        kv->value = lt_loader_tmpl(L, map->items[i], what2);
        if (!kv->value)
            return -EINVAL;
        kv->name = cu_strdup(conf_key(map, i));
        if (lower)
            for (char *p = kv->name; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        (*n)++;
    }
    return 0;
}

json_t *lt_conf_json(const conf_node *n)
{
    switch (n->type) {
    case CONF_NULL: return json_null();
    case CONF_BOOL: return json_boolean(n->b);
    case CONF_INT: return json_integer((json_int_t)n->i);
    case CONF_FLOAT: return json_real(n->f);
    case CONF_STRING: return json_string_nocheck(n->str ? n->str : "");
    case CONF_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n; i++)
            json_array_append_new(a, lt_conf_json(n->items[i]));
        return a;
    }
    case CONF_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i < n->n; i++)
            json_object_set_new_nocheck(o, conf_key(n, i), lt_conf_json(n->items[i]));
        return o;
    }
    }
    return json_null();
}

/* Each processor function is named once, at its first use: no JavaScript
 * runs, so a function step counts errors.Undefined function "NAME" (as
 * Artillery does for a missing function) and a hook is skipped. */
static void add_func(lt_loader *L, const char *name, const conf_node *at, const char *what)
{
    for (size_t i = 0; i < L->nfuncs; i++)
        if (!strcmp(L->funcs[i], name))
            return;
    L->funcs = cu_realloc(L->funcs, (L->nfuncs + 1) * sizeof *L->funcs);
    L->funcs[L->nfuncs++] = cu_strdup(name);
    bool step = !strcmp(what, "function") || !strcmp(what, "beforeScenario") ||
                !strcmp(what, "afterScenario");
    conf_warnf(at, "%s '%s' will not run: cutover runs no JavaScript (%s)", what, name,
               step ? "the step counts errors.Undefined function, as Artillery does for a "
                      "missing function, and the user goes on"
                    : "the hook is skipped");
}

int lt_loader_funcs(lt_loader *L, const conf_node *n, const char *what)
{
    if (!n || n->type == CONF_NULL)
        return 0;
    if (n->type == CONF_STRING) {
        add_func(L, n->str, n, what);
        return 0;
    }
    if (n->type == CONF_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            if (n->items[i]->type != CONF_STRING) {
                conf_errf(L->err, n->items[i], "%s must name processor functions (got a %s)", what,
                          conf_type_name(n->items[i]->type));
                return -EINVAL;
            }
            add_func(L, n->items[i]->str, n->items[i], what);
        }
        return 0;
    }
    conf_errf(L->err, n, "%s must be a function name or a list of them (got a %s)", what,
              conf_type_name(n->type));
    return -EINVAL;
}

char *lt_root_name(const char *name)
{
    size_t n = strcspn(name, ".[");
    return cu_strndup(name, n);
}

typedef struct use_arg {
    lt_loader *L;
    const conf_node *at;
} use_arg;

static void record_use(const char *name, void *arg)
{
    use_arg *u = arg;
    if (name[0] == '$' || !name[0])
        return;
    lt_loader *L = u->L;
    L->uses = cu_realloc(L->uses, (L->nuses + 1) * sizeof *L->uses);
    L->uses[L->nuses++] = (lt_use){lt_root_name(name), L->scenario, u->at};
}

void lt_loader_uses(lt_loader *L, const conf_node *n)
{
    if (!n)
        return;
    if (n->type == CONF_STRING && n->str && strstr(n->str, "{{")) {
        lt_tmpl *t = lt_tmpl_compile(n->str);
        use_arg u = {L, n};
        lt_tmpl_each_var(t, record_use, &u);
        lt_tmpl_free(t);
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            lt_loader_uses(L, n->keys[i]);
        lt_loader_uses(L, n->items[i]);
    }
}



/* ---- durations ----------------------------------------------------------------------------- */
bool lt_parse_duration(const conf_node *n, double *seconds)
{
    static const struct { const char *unit; double s; } units[] = {
        {"milliseconds", 0.001}, {"millisecond", 0.001}, {"msecs", 0.001}, {"msec", 0.001},
        {"ms", 0.001}, {"seconds", 1}, {"second", 1}, {"secs", 1}, {"sec", 1}, {"s", 1},
        {"minutes", 60}, {"minute", 60}, {"mins", 60}, {"min", 60}, {"m", 60},
        {"hours", 3600}, {"hour", 3600}, {"hrs", 3600}, {"hr", 3600}, {"h", 3600},
        {"days", 86400}, {"day", 86400}, {"d", 86400}, {"weeks", 604800}, {"week", 604800},
        {"w", 604800}, {"years", 31557600}, {"year", 31557600}, {"yrs", 31557600},
        {"yr", 31557600}, {"y", 31557600}};
    double v;
    if (conf_number(n, &v)) {
        *seconds = v;
        return v >= 0;
    }
    if (!n || n->type != CONF_STRING)
        return false;
    const char *s = n->str;
    char *end;
    if (!isdigit((unsigned char)*s) && *s != '.')
        return false;
    v = strtod(s, &end);
    if (end == s)
        return false;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < CU_ARRAY_LEN(units); i++)
        if (!strcasecmp(end, units[i].unit)) {
            *seconds = v * units[i].s;
            return true;
        }
    return false;
}

/* "20%" (of the think time) or a number of milliseconds. */
int lt_parse_jitter(lt_loader *L, const conf_node *n, double *v, bool *pct)
{
    char *end = NULL;
    if (n->type == CONF_STRING && n->str[0]) {
        *v = strtod(n->str, &end);
        *pct = end && *end == '%' && end[1] == '\0';
        if (end != n->str && (*pct || *end == '\0') && *v >= 0)
            return 0;
    } else if (conf_number(n, v) && *v >= 0) {
        *pct = false;
        return 0;
    }
    conf_errf(L->err, n, "jitter must be a percentage such as \"20%%\" or a number of milliseconds");
    return -EINVAL;
}

/* ---- steps ---------------------------------------------------------------------------------- */
typedef struct builder {
    lt_step **v;
    size_t *n;
    size_t cap;
} builder;

static lt_step *push(builder *b)
{
    if (*b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        *b->v = cu_realloc(*b->v, b->cap * sizeof **b->v);
    }
    lt_step *st = &(*b->v)[(*b->n)++];
    memset(st, 0, sizeof *st);
    return st;
}

static const char *const methods[][2] = {{"get", "GET"}, {"post", "POST"}, {"put", "PUT"},
    {"patch", "PATCH"}, {"delete", "DELETE"}, {"head", "HEAD"}, {"options", "OPTIONS"}};
static const char *const actions[] = {"get", "post", "put", "patch", "delete", "head", "options",
    "think", "loop", "log", "function", "parallel"};
static const char *const loop_keys[] = {"loop", "count", "over", "whileTrue", "loopValue",
    "loopElement"};
static const char *const foreign[][2] = {{"connect", "websocket"}, {"send", "websocket"},
    {"emit", "socket.io"}, {"namespace", "socket.io"}, {"reconnect", "socket.io"},
    {"context", "socket.io"}};

static int compile_step(lt_loader *L, const conf_node *n, builder *b);

static int compile_count(lt_loader *L, lt_step *st, const conf_node *c)
{
    if (c->type == CONF_INT || c->type == CONF_FLOAT) {
        double v = c->type == CONF_INT ? (double)c->i : ceil(c->f);
        if (v == -1) /* Artillery: -1 loops forever */
            return 0;
        char num[32];
        snprintf(num, sizeof num, "%.0f", v < 0 ? 0 : v);
        st->loop.count = lt_tmpl_compile(num);
        return 0;
    }
    if (c->type == CONF_STRING) {
        double v;
        long a, z;
        char tail;
        if (strstr(c->str, "{{") || conf_number(c, &v)) {
            st->loop.count = lt_tmpl_compile(c->str);
            return 0;
        }
        if (sscanf(c->str, "%ld-%ld%c", &a, &z, &tail) == 2 && a >= 0 && z >= a) {
            char num[32];
            snprintf(num, sizeof num, "%ld", z - a); /* from a to z-1: z-a rounds */
            st->loop.count = lt_tmpl_compile(num);
            st->loop.first = a;
            return 0;
        }
    }
    conf_errf(L->err, c, "count must be a number, a range such as \"1-5\" or a template");
    return -EINVAL;
}

static int compile_loop(lt_loader *L, const conf_node *n, builder *b)
{
    conf_check_keys(n, loop_keys, CU_ARRAY_LEN(loop_keys), "loop step");
    const conf_node *body = conf_get(n, "loop"), *c = conf_get(n, "count"), *over = conf_get(n, "over");
    lt_step *st = push(b);
    st->kind = LT_STEP_LOOP;
    if (lt_flow_compile(L, body, &st->loop.steps, &st->loop.nsteps) != 0)
        return -EINVAL;
    if (c && compile_count(L, st, c) != 0)
        return -EINVAL;
    if (over) {
        if (over->type == CONF_SEQ) {
            st->loop.over_list = lt_conf_json(over);
        } else if (over->type == CONF_STRING && *over->str) {
            const char *s = over->str;
            size_t len = strlen(s);
            if (cu_startswith(s, "{{") && len > 4 && !strcmp(s + len - 2, "}}")) { /* "{{ list }}" */
                s += 2;
                len -= 4;
                while (len && isspace((unsigned char)*s))
                    s++, len--;
                while (len && isspace((unsigned char)s[len - 1]))
                    len--;
            }
            st->loop.over_var = cu_strndup(s, len);
            lt_loader_uses(L, over);
        } else {
            conf_errf(L->err, over, "over must be a list or the name of a variable holding one");
            return -EINVAL;
        }
    }
    const conf_node *wt = conf_get(n, "whileTrue");
    if (lt_loader_funcs(L, wt, "whileTrue") != 0)
        return -EINVAL;
    if (wt && !c && !over) { /* its function cannot run: once, rather than forever */
        conf_warnf(wt, "this loop has only whileTrue, whose function cannot run: it runs once");
        st->loop.count = lt_tmpl_compile("1");
    }
    const conf_node *lv = conf_get(n, "loopValue"), *le = conf_get(n, "loopElement");
    if ((lv && (lv->type != CONF_STRING || !*lv->str)) || (le && (le->type != CONF_STRING || !*le->str))) {
        conf_errf(L->err, lv && (lv->type != CONF_STRING || !*lv->str) ? lv : le,
                  "loopValue and loopElement must be variable names");
        return -EINVAL;
    }
    st->loop.value_name = cu_strdup(lv ? lv->str : "$loopCount");
    st->loop.element_name = cu_strdup(le ? le->str : "$loopElement");
    if (lv || le) { /* the loop defines these names for the lint */
        const conf_node *names[] = {lv, le};
        for (int k = 0; k < 2; k++)
            if (names[k]) {
                L->defs = cu_realloc(L->defs, (L->ndefs + 1) * sizeof *L->defs);
                L->defs[L->ndefs++] = (lt_defn){lt_root_name(names[k]->str), L->scenario};
            }
    }
    return 0;
}

static int compile_step(lt_loader *L, const conf_node *n, builder *b)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a flow step must be a map such as {get: {url: \"/\"}} (got a %s)",
                  conf_type_name(n->type));
        return -EINVAL;
    }
    if (n->n == 0) {
        conf_errf(L->err, n, "empty flow step");
        return -EINVAL;
    }
    if (conf_get(n, "loop"))
        return compile_loop(L, n, b);
    const conf_node *jit = conf_get(n, "jitter");
    if (jit && conf_get(n, "think") && n->n == 2) { /* {think: 5, jitter: "20%"} */
        lt_step *st = push(b);
        st->kind = LT_STEP_THINK;
        double s;
        if (!lt_parse_duration(conf_get(n, "think"), &s)) {
            conf_errf(L->err, conf_get(n, "think"),
                      "think must be a number of seconds or a duration such as \"500ms\"");
            return -EINVAL;
        }
        st->think_ms = s * 1000.0;
        st->has_jitter = true;
        return lt_parse_jitter(L, jit, &st->jitter, &st->jitter_pct);
    }
    if (n->n > 1) {
        conf_errf(L->err, n->keys[1], "a flow step must have exactly one action, found '%s' and '%s'",
                  conf_key(n, 0), conf_key(n, 1));
        return -EINVAL;
    }
    const char *k = conf_key(n, 0);
    const conf_node *v = n->items[0];
    for (size_t i = 0; i < CU_ARRAY_LEN(methods); i++)
        if (!strcmp(k, methods[i][0])) {
            lt_step *st = push(b);
            st->kind = LT_STEP_REQUEST;
            return lt_request_compile(L, &st->req, methods[i][1], v);
        }
    if (!strcmp(k, "think")) {
        double s;
        if (!lt_parse_duration(v, &s)) {
            conf_errf(L->err, v, "think must be a number of seconds or a duration such as \"500ms\"");
            return -EINVAL;
        }
        lt_step *st = push(b);
        st->kind = LT_STEP_THINK;
        st->think_ms = s * 1000.0;
        return 0;
    }
    if (!strcmp(k, "log")) {
        lt_tmpl *t = lt_loader_tmpl(L, v, "log");
        if (!t)
            return -EINVAL;
        lt_loader_uses(L, v);
        lt_step *st = push(b);
        st->kind = LT_STEP_LOG;
        st->log = t;
        return 0;
    }
    if (!strcmp(k, "function")) {
        if (v->type != CONF_STRING || !*v->str) {
            conf_errf(L->err, v, "function must name a processor function");
            return -EINVAL;
        }
        lt_loader_funcs(L, v, "function");
        lt_step *st = push(b);
        st->kind = LT_STEP_FUNCTION;
        st->function = cu_strdup(v->str);
        return 0;
    }
    if (!strcmp(k, "parallel")) {
        if (v->type != CONF_SEQ) {
            conf_errf(L->err, v, "parallel must be a list of steps");
            return -EINVAL;
        }
        if (!L->warned_parallel)
            conf_warnf(n->keys[0], "parallel steps run one after the other (Artillery's per-user "
                       "connection serializes them too)");
        L->warned_parallel = true;
        for (size_t i = 0; i < v->n; i++)
            if (compile_step(L, v->items[i], b) != 0)
                return -EINVAL;
        return 0;
    }
    for (size_t i = 0; i < CU_ARRAY_LEN(foreign); i++)
        if (!strcmp(k, foreign[i][0])) {
            conf_errf(L->err, n->keys[0], "'%s' is a %s step: cutover runs only HTTP scenarios", k,
                      foreign[i][1]);
            return -EINVAL;
        }
    const char *near = cu_nearest(k, actions, CU_ARRAY_LEN(actions));
    if (near)
        conf_errf(L->err, n->keys[0], "unknown flow step '%s' (did you mean '%s'?)", k, near);
    else
        conf_errf(L->err, n->keys[0], "unknown flow step '%s'", k);
    return -EINVAL;
}

int lt_flow_compile(lt_loader *L, const conf_node *flow, lt_step **out, size_t *n)
{
    builder b = {out, n, 0};
    *out = NULL;
    *n = 0;
    if (!flow || flow->type != CONF_SEQ) {
        conf_errf(L->err, flow, "a flow must be a list of steps (got a %s)",
                  flow ? conf_type_name(flow->type) : "nothing");
        return -EINVAL;
    }
    for (size_t i = 0; i < flow->n; i++) {
        const conf_node *it = flow->items[i];
        size_t count = it->type == CONF_SEQ ? it->n : 1;
        for (size_t j = 0; j < count; j++)
            if (compile_step(L, it->type == CONF_SEQ ? it->items[j] : it, &b) != 0)
                return -EINVAL;
    }
    return 0;
}

void lt_steps_free(lt_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lt_step *st = &steps[i];
        switch (st->kind) {
        case LT_STEP_REQUEST:
            lt_request_free(&st->req);
            break;
        case LT_STEP_LOOP:
            lt_steps_free(st->loop.steps, st->loop.nsteps);
            lt_tmpl_free(st->loop.count);
            json_decref(st->loop.over_list);
            free(st->loop.over_var);
            free(st->loop.value_name);
            free(st->loop.element_name);
            break;
        case LT_STEP_LOG:
            lt_tmpl_free(st->log);
            break;
        case LT_STEP_FUNCTION:
            free(st->function);
            break;
        case LT_STEP_THINK:
            break;
        }
    }
    free(steps);
}
