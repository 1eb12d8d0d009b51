/* loadtest/script.c: lt_script_load, Artillery's loading pipeline (notes
 * 1.1) and the compilation of `config` (phases, variables, defaults, HTTP,
 * TLS, plugins); flows are compiled by script_flow.c / script_req.c.
 *
 * Pipeline: parse the script; -e merges config.environments[NAME] into
 * config (lodash merge: lists by index); -t sets config.target; --overrides
 * is deep-merged into the whole document with lists replaced; -v keys go
 * into config.variables; then config is templated once. Artillery's pass
 * renders every string with only $processEnvironment/$env/$environment
 * known, which destroys templates that name per-user variables
 * (artilleryio/artillery#601: `defaults.headers: {x: "{{ tok }}"}` becomes
 * "undefined"). Here a config string is rendered at load only when every
 * placeholder in it is $processEnvironment.X, $env.X or $environment; any
 * other template is kept and rendered per user (config.variables values by
 * the engine, headers and cookies as templates). $randomNumber and
 * $randomString in config are thus drawn per user, not once.
 *
 * Deliberate differences from Artillery 2.0.21, each warned about at load:
 * formData `{path: f}` uploads the file (Artillery fails the user with
 * `source.on is not a function`); a multipart Content-Type without boundary
 * is dropped; processor functions are not run (no JavaScript engine).
 * Warnings go through cu_warn as they are found; the once-per-load ones
 * (processor functions, ignored expect checks) at the end.
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- config templating --------------------------------------------------------------------- */
typedef struct tmpl_check {
    bool ok;
} tmpl_check;

static void check_var(const char *name, void *arg)
{
    tmpl_check *c = arg;
    if (strcmp(name, "$environment") != 0)
        c->ok = false;
}

/* $processEnvironment.X / $env.X in a config string when X is not set: the
 * text renders as "undefined" (a bearer token "Bearer undefined"). */
static void warn_unset_env(const conf_node *n)
{
    static const char *const prefixes[] = {"$processEnvironment.", "$env."};
    for (size_t k = 0; k < CU_ARRAY_LEN(prefixes); k++) {
        size_t plen = strlen(prefixes[k]);
        for (const char *p = strstr(n->str, prefixes[k]); p; p = strstr(p + 1, prefixes[k])) {
            const char *name = p + plen;
            size_t len = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789_");
            char var[256];
            if (!len || len >= sizeof var)
                continue;
            memcpy(var, name, len);
            var[len] = '\0';
            if (!getenv(var))
                conf_warnf(n, "environment variable %s is not set: %s%s renders as undefined",
                           var, prefixes[k], var);
        }
    }
}

static void template_config(conf_node *n, const lt_ctx *ctx)
{
    if (n->type == CONF_STRING && n->str && strstr(n->str, "{{")) {
        warn_unset_env(n);
        lt_tmpl *t = lt_tmpl_compile(n->str);
        tmpl_check c = {lt_tmpl_nfuncs(t) == 0};
        lt_tmpl_each_var(t, check_var, &c);
        if (c.ok) {
            json_t *v = lt_tmpl_value(t, ctx);
            free(n->str);
            if (v) {
                n->str = cu_strdup(json_string_value(v));
            } else { /* undefined: as if the key were absent */
                n->type = CONF_NULL;
                n->str = cu_strdup("");
            }
            json_decref(v);
        }
        lt_tmpl_free(t);
    }
    for (size_t i = 0; i < n->n; i++)
        template_config(n->items[i], ctx);
}

/* ---- scalars ------------------------------------------------------------------------------- */
/* A number, or an error naming what was expected and what was found. */
static int number(lt_loader *L, const conf_node *n, const char *what, double *out)
{
    if (conf_number(n, out))
        return 0;
    if (n->type == CONF_STRING)
        conf_errf(L->err, n, "%s must be a number (got \"%s\")", what, n->str);
    else
        conf_errf(L->err, n, "%s must be a number (got a %s)", what, conf_type_name(n->type));
    return -EINVAL;
}

static int boolean(lt_loader *L, const conf_node *n, const char *what, bool *out)
{
    if (n->type != CONF_BOOL) {
        conf_errf(L->err, n, "%s must be true or false (got a %s)", what, conf_type_name(n->type));
        return -EINVAL;
    }
    *out = n->b;
    return 0;
}

static int want_map(lt_loader *L, const conf_node *n, const char *what)
{
    if (n && n->type != CONF_MAP) {
        conf_errf(L->err, n, "%s must be a map (got a %s)", what, conf_type_name(n->type));
        return -EINVAL;
    }
    return 0;
}

/* JavaScript's parseInt(String(x)), NaN as 0. */
static long js_parse_int(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s ? 0 : v;
}

/* ---- phases -------------------------------------------------------------------------------- */
static const char *const phase_keys[] = {"duration", "arrivalRate", "rampTo", "arrivalCount",
                                         "pause", "maxVusers", "name", "mode"};

static int duration(lt_loader *L, const conf_node *n, double *out)
{
    if (lt_parse_duration(n, out))
        return 0;
    cu_buf b = CU_BUF_INIT;
    if (conf_is_scalar(n))
        lt_scalar_text(&b, n);
    else
        cu_buf_appendf(&b, "a %s", conf_type_name(n->type));
    conf_errf(L->err, n, "Invalid duration for phase: %s", b.data);
    cu_buf_free(&b);
    return -EINVAL;
}

static int compile_phase(lt_loader *L, const conf_node *n, lt_phase *p)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a phase must be a map such as {duration: 60, arrivalRate: 10} (got a %s)",
                  conf_type_name(n->type));
        return -EINVAL;
    }
    conf_check_keys(n, phase_keys, CU_ARRAY_LEN(phase_keys), "phase");
    const conf_node *dur = conf_get(n, "duration"), *rate = conf_get(n, "arrivalRate");
    const conf_node *ramp = conf_get(n, "rampTo"), *count = conf_get(n, "arrivalCount");
    const conf_node *pause = conf_get(n, "pause"), *maxv = conf_get(n, "maxVusers");
    const conf_node *name = conf_get(n, "name"), *mode = conf_get(n, "mode");
    double d = 0, v;
    if (name && conf_is_scalar(name) && name->type != CONF_NULL) {
        cu_buf b = CU_BUF_INIT;
        lt_scalar_text(&b, name);
        p->name = cu_buf_steal(&b);
    }
    if (dur && duration(L, dur, &d) != 0)
        return -EINVAL;
    if (maxv) {
        if (number(L, maxv, "maxVusers", &v) != 0)
            return -EINVAL;
        p->max_vusers = v > 0 ? (int64_t)v : 0;
    }
    if (mode && !(mode->type == CONF_STRING && !strcmp(mode->str, "uniform")))
        conf_warnf(mode, "phase mode '%s' is not supported by cutover: arrivals are uniform",
                   mode->str ? mode->str : "?");
    if (pause) {
        p->kind = LT_PHASE_PAUSE;
        return duration(L, pause, &p->duration_s);
    }
    p->duration_s = d;
    if (count) {
        if (number(L, count, "arrivalCount", &v) != 0)
            return -EINVAL;
        if (v < 0) {
            conf_errf(L->err, count, "arrivalCount must not be negative");
            return -EINVAL;
        }
        p->kind = LT_PHASE_COUNT;
        p->count = (uint64_t)llround(v);
    } else if (rate || ramp) {
        if (rate && number(L, rate, "arrivalRate", &p->rate) != 0)
            return -EINVAL;
        if (ramp && number(L, ramp, "rampTo", &p->ramp_to) != 0)
            return -EINVAL;
        if (p->rate < 0 || p->ramp_to < 0) {
            conf_errf(L->err, p->rate < 0 ? rate : ramp, "arrival rates must not be negative");
            return -EINVAL;
        }
        p->kind = ramp ? LT_PHASE_RAMP : p->rate == 0 ? LT_PHASE_PAUSE : LT_PHASE_RATE;
    } else {
        conf_errf(L->err, n, "a phase needs arrivalRate, rampTo, arrivalCount or pause");
        return -EINVAL;
    }
    if (!dur) {
        conf_errf(L->err, n, "this phase needs a duration");
        return -EINVAL;
    }
    return 0;
}

static int compile_phases(lt_loader *L, const conf_node *phases)
{
    lt_script *s = L->s;
    if (!phases || phases->type == CONF_NULL) { /* Artillery: one user */
        s->phases = cu_calloc(1, sizeof *s->phases);
        s->phases[0] = (lt_phase){.kind = LT_PHASE_COUNT, .duration_s = 1, .count = 1};
        s->nphases = 1;
        return 0;
    }
    if (phases->type != CONF_SEQ) {
        conf_errf(L->err, phases, "config.phases must be a list (got a %s)", conf_type_name(phases->type));
        return -EINVAL;
    }
    s->phases = cu_calloc(phases->n ? phases->n : 1, sizeof *s->phases);
    for (size_t i = 0; i < phases->n; i++) {
        s->nphases++;
        if (compile_phase(L, phases->items[i], &s->phases[i]) != 0)
            return -EINVAL;
    }
    return 0;
}

/* ---- plugins ------------------------------------------------------------------------------- */
static const char *const ensure_keys[] = {"thresholds", "conditions", "maxErrorRate", "p95", "p99",
                                          "max", "min", "median"};
static const char *const mbe_keys[] = {"useOnlyRequestNames", "stripQueryString",
    "ignoreUnnamedRequests", "metricsNamespace", "groupDynamicURLs", "suppressOutput"};
static const char *const expect_opt_keys[] = {"formatter", "outputFormat", "reportFailuresAsErrors",
    "expectDefault200", "useOnlyRequestNames"};

static void add_condition(lt_plugins *pl, char *text, lt_expr *e, bool strict)
{
    pl->conditions = cu_realloc(pl->conditions, (pl->nconditions + 1) * sizeof *pl->conditions);
    pl->conditions[pl->nconditions++] = (lt_condition){text, e, strict};
}

static int compile_ensure(lt_loader *L, const conf_node *n)
{
    lt_plugins *pl = &L->s->plugins;
    if (want_map(L, n, "ensure") != 0)
        return -EINVAL;
    conf_check_keys(n, ensure_keys, CU_ARRAY_LEN(ensure_keys), "ensure");
    const conf_node *th = conf_get(n, "thresholds"), *co = conf_get(n, "conditions"), *v;
    if (th && th->type != CONF_SEQ) {
        conf_errf(L->err, th, "ensure.thresholds must be a list such as [{http.response_time.p99: 250}]");
        return -EINVAL;
    }
    for (size_t i = 0; th && i < th->n; i++) {
        const conf_node *t = th->items[i];
        if (t->type != CONF_MAP || t->n == 0) /* Artillery skips non-objects */
            continue;
        double max;
        if (number(L, t->items[0], "a threshold", &max) != 0)
            return -EINVAL;
        pl->thresholds = cu_realloc(pl->thresholds, (pl->nthresholds + 1) * sizeof *pl->thresholds);
        pl->thresholds[pl->nthresholds++] = (lt_threshold){cu_strdup(conf_key(t, 0)), max};
    }
    if (co && co->type != CONF_SEQ) {
        conf_errf(L->err, co, "ensure.conditions must be a list of {expression, strict}");
        return -EINVAL;
    }
    for (size_t i = 0; co && i < co->n; i++) {
        const conf_node *c = co->items[i], *ex = conf_get(c, "expression"), *st = conf_get(c, "strict");
        static const char *const cond_keys[] = {"expression", "strict"};
        if (c->type != CONF_MAP)
            continue;
        conf_check_keys(c, cond_keys, 2, "ensure condition");
        if (!ex || ex->type != CONF_STRING) {
            conf_errf(L->err, ex ? ex : c, "an ensure condition needs an expression string");
            return -EINVAL;
        }
        bool strict = true;
        if (st && boolean(L, st, "strict", &strict) != 0)
            return -EINVAL;
        char e[CU_ERRLEN] = "";
        lt_expr *x = lt_expr_compile(ex->str, e);
        if (!x) {
            conf_errf(L->err, ex, "invalid ensure expression '%s': %s", ex->str, e);
            return -EINVAL;
        }
        add_condition(pl, cu_strdup(ex->str), x, strict);
    }
    for (size_t i = 0; i < n->n; i++) { /* legacy keys, in the order written */
        const char *k = conf_key(n, i);
        if (strcmp(k, "p95") && strcmp(k, "p99") && strcmp(k, "max") && strcmp(k, "min") &&
            strcmp(k, "median"))
            continue;
        cu_buf b = CU_BUF_INIT;
        lt_scalar_text(&b, n->items[i]);
        long max = js_parse_int(b.data);
        cu_buf_reset(&b);
        cu_buf_appendf(&b, "http.response_time.%s < %ld", k, max);
        char e[CU_ERRLEN] = "";
        lt_expr *x = lt_expr_compile(b.data, e);
        cu_buf_free(&b);
        if (!x) {
            conf_errf(L->err, n->items[i], "ensure.%s: %s", k, e);
            return -EINVAL;
        }
        add_condition(pl, cu_asprintf("%s < %ld", k, max), x, true);
    }
    if ((v = conf_get(n, "maxErrorRate")) && number(L, v, "maxErrorRate", &pl->max_error_rate) != 0)
        return -EINVAL;
    return 0;
}

static int compile_mbe(lt_loader *L, const conf_node *n)
{
    lt_plugins *pl = &L->s->plugins;
    if (!n) { /* added by Artillery when absent, with these two on */
        pl->mbe_strip_query = pl->mbe_suppress_output = true;
        pl->mbe_prefix = cu_strdup("plugins.metrics-by-endpoint");
        return 0;
    }
    const conf_node *v;
    if (n->type == CONF_MAP) {
        conf_check_keys(n, mbe_keys, CU_ARRAY_LEN(mbe_keys), "metrics-by-endpoint");
        struct { const char *k; bool *b; } flags[] = {
            {"useOnlyRequestNames", &pl->mbe_only_names}, {"stripQueryString", &pl->mbe_strip_query},
            {"ignoreUnnamedRequests", &pl->mbe_ignore_unnamed},
            {"suppressOutput", &pl->mbe_suppress_output}};
        for (size_t i = 0; i < CU_ARRAY_LEN(flags); i++)
            if ((v = conf_get(n, flags[i].k)) && boolean(L, v, flags[i].k, flags[i].b) != 0)
                return -EINVAL;
        if ((v = conf_get(n, "groupDynamicURLs")) && !(v->type == CONF_BOOL && v->b))
            conf_warnf(v, "groupDynamicURLs: false is not supported by cutover: endpoints are named "
                       "by the URL as written");
        if ((v = conf_get(n, "metricsNamespace")) && v->type == CONF_STRING && *v->str)
            pl->mbe_prefix = cu_strdup(v->str);
    }
    if (!pl->mbe_prefix)
        pl->mbe_prefix = cu_strdup("plugins.metrics-by-endpoint");
    return 0;
}

static int compile_expect_opts(lt_loader *L, const conf_node *n)
{
    lt_plugins *pl = &L->s->plugins;
    if (!n || n->type != CONF_MAP)
        return 0;
    conf_check_keys(n, expect_opt_keys, CU_ARRAY_LEN(expect_opt_keys), "expect plugin");
    const conf_node *f = conf_get(n, "outputFormat") ? conf_get(n, "outputFormat") : conf_get(n, "formatter");
    if (f) {
        const char *s = f->type == CONF_STRING ? f->str : "";
        if (!strcmp(s, "pretty"))
            pl->expect_format = LT_EXPECT_PRETTY;
        else if (!strcmp(s, "prettyError"))
            pl->expect_format = LT_EXPECT_PRETTY_ERROR;
        else if (!strcmp(s, "json"))
            pl->expect_format = LT_EXPECT_JSON;
        else if (!strcmp(s, "silent"))
            pl->expect_format = LT_EXPECT_SILENT;
        else {
            conf_errf(L->err, f, "expect output format must be pretty, prettyError, json or silent");
            return -EINVAL;
        }
    }
    /* Artillery's schema takes booleans or the strings "true"/"false" */
    struct { const char *k; bool *b; } flags[] = {
        {"reportFailuresAsErrors", &pl->expect_failures_as_errors},
        {"expectDefault200", &pl->expect_default_200},
        {"useOnlyRequestNames", &pl->expect_only_names}};
    for (size_t i = 0; i < CU_ARRAY_LEN(flags); i++) {
        const conf_node *v = conf_get(n, flags[i].k);
        if (v && v->type == CONF_STRING && (!strcmp(v->str, "true") || !strcmp(v->str, "false")))
            *flags[i].b = !strcmp(v->str, "true");
        else if (v && boolean(L, v, flags[i].k, flags[i].b) != 0)
            return -EINVAL;
    }
    return 0;
}

static int compile_plugins(lt_loader *L, const conf_node *config)
{
    lt_plugins *pl = &L->s->plugins;
    const conf_node *plugins = conf_get(config, "plugins"), *mbe = NULL, *ens = NULL;
    pl->mbe = true;
    pl->max_error_rate = -1;
    if (plugins && plugins->type != CONF_NULL && want_map(L, plugins, "config.plugins") != 0)
        return -EINVAL;
    for (size_t i = 0; plugins && i < plugins->n; i++) {
        const char *k = conf_key(plugins, i);
        if (!strcmp(k, "ensure")) {
            pl->ensure = true;
            ens = plugins->items[i];
        } else if (!strcmp(k, "expect")) {
            pl->expect = true;
            if (compile_expect_opts(L, plugins->items[i]) != 0)
                return -EINVAL;
        } else if (!strcmp(k, "metrics-by-endpoint")) {
            mbe = plugins->items[i];
        } else if (!strcmp(k, "apdex")) {
            pl->apdex = true;
        } else {
            conf_warnf(plugins->keys[i], "Plugin %s specified but module artillery-plugin-%s could "
                       "not be found (not supported by cutover)", k, k);
        }
    }
    if (compile_mbe(L, mbe) != 0)
        return -EINVAL;
    /* apdex: config.apdex.threshold, else plugins.apdex.threshold, else 500 */
    const conf_node *ap = conf_get(config, "apdex"), *apt = NULL;
    if (ap)
        pl->apdex = true;
    apt = conf_get(ap, "threshold") ? conf_get(ap, "threshold")
                                    : conf_get(conf_get(plugins, "apdex"), "threshold");
    pl->apdex_ms = 500;
    if (apt && (number(L, apt, "apdex threshold (ms)", &pl->apdex_ms) != 0 || pl->apdex_ms <= 0)) {
        if (!L->err[0])
            conf_errf(L->err, apt, "apdex threshold must be more than 0 ms");
        return -EINVAL;
    }
    const conf_node *checks = conf_get(config, "ensure");
    if (checks && !pl->ensure)
        conf_warnf(checks, "config.ensure is set but config.plugins has no 'ensure: {}': Artillery "
                   "does not run these checks, and neither does cutover");
    if (!checks)
        checks = ens;
    if (pl->ensure && checks && checks->type != CONF_NULL && compile_ensure(L, checks) != 0)
        return -EINVAL;
    return 0;
}

/* ---- config -------------------------------------------------------------------------------- */
static const char *const config_keys[] = {"target", "phases", "environments", "processor",
    "variables", "payload", "plugins", "ensure", "defaults", "http", "tls", "timeout", "engines",
    "statsInterval", "mode", "apdex", "includeFiles", "bundling", "ws", "socketio"};
static const char *const config_unsupported[][2] = {
    {"engines", "config.engines is ignored: cutover runs only HTTP scenarios"}};
static const char *const defaults_keys[] = {"headers", "cookie", "think", "strictCapture"};
static const char *const http_keys[] = {"timeout", "pool", "maxSockets", "extendedMetrics",
                                        "defaults", "cookieJarOptions"};
static const char *const tls_keys[] = {"rejectUnauthorized", "ca"};

static int compile_defaults(lt_loader *L, const conf_node *config, const conf_node *http)
{
    lt_script *s = L->s;
    const conf_node *d1 = conf_get(http, "defaults"), *d2 = conf_get(config, "defaults");
    if (want_map(L, d1, "config.http.defaults") != 0 || want_map(L, d2, "config.defaults") != 0)
        return -EINVAL;
    conf_check_keys(d1, defaults_keys, CU_ARRAY_LEN(defaults_keys), "config.http.defaults");
    conf_check_keys(d2, defaults_keys, CU_ARRAY_LEN(defaults_keys), "config.defaults");
    const conf_node *h = conf_get(d1, "headers") ? conf_get(d1, "headers") : conf_get(d2, "headers");
    if (h) {
        if (lt_loader_kvs(L, h, "defaults.headers", true, &s->default_headers, &s->ndefault_headers) != 0)
            return -EINVAL;
    } else {
        s->default_headers = cu_calloc(1, sizeof *s->default_headers);
        s->default_headers[0] = (lt_kv){cu_strdup("user-agent"),
                                        lt_tmpl_compile("Artillery (https://artillery.io)")};
        s->ndefault_headers = 1;
    }
    const conf_node *c = conf_get(d1, "cookie") ? conf_get(d1, "cookie") : conf_get(d2, "cookie");
    if (c && lt_loader_kvs(L, c, "defaults.cookie", false, &s->default_cookies, &s->ndefault_cookies) != 0)
        return -EINVAL;
    const conf_node *sc = conf_get(d1, "strictCapture") ? conf_get(d1, "strictCapture")
                                                        : conf_get(d2, "strictCapture");
    if (sc && boolean(L, sc, "strictCapture", &L->default_strict) != 0)
        return -EINVAL;
    const conf_node *think = conf_get(d1, "think") ? conf_get(d1, "think") : conf_get(d2, "think");
    if (think && think->type != CONF_NULL) {
        static const char *const think_keys[] = {"jitter"};
        if (want_map(L, think, "defaults.think") != 0)
            return -EINVAL;
        conf_check_keys(think, think_keys, 1, "defaults.think");
        const conf_node *j = conf_get(think, "jitter");
        if (j && lt_parse_jitter(L, j, &s->think_jitter, &s->think_jitter_pct) != 0)
            return -EINVAL;
    }
    return 0;
}

static int compile_config(lt_loader *L, const conf_node *config)
{
    lt_script *s = L->s;
    const conf_node *v;
    conf_check_keys(config, config_keys, CU_ARRAY_LEN(config_keys), "config");
    for (size_t i = 0; i < CU_ARRAY_LEN(config_unsupported); i++)
        if ((v = conf_get(config, config_unsupported[i][0])))
            conf_warnf(v, "%s", config_unsupported[i][1]);
    if (compile_plugins(L, config) != 0 || compile_phases(L, conf_get(config, "phases")) != 0)
        return -EINVAL;
    const conf_node *vars = conf_get(config, "variables");
    if (vars && vars->type != CONF_NULL && want_map(L, vars, "config.variables") != 0)
        return -EINVAL;
    s->variables = vars && vars->type == CONF_MAP ? lt_conf_json(vars) : json_object();
    if (lt_payloads_compile(L, conf_get(config, "payload")) != 0)
        return -EINVAL;

    const conf_node *http = conf_get(config, "http");
    if (http && http->type != CONF_NULL && want_map(L, http, "config.http") != 0)
        return -EINVAL;
    conf_check_keys(http, http_keys, CU_ARRAY_LEN(http_keys), "config.http");
    if ((v = conf_get(http, "pool")) && v->type != CONF_NULL) {
        double n;
        if (number(L, v, "http.pool", &n) != 0)
            return -EINVAL;
        if (n < 1 || n != floor(n) || n > 100000) {
            conf_errf(L->err, v, "http.pool must be a number of connections from 1 to 100000");
            return -EINVAL;
        }
        s->pool = (size_t)n;
    }
    if ((v = conf_get(http, "maxSockets")))
        conf_warnf(v, "http.maxSockets is ignored, as in Artillery (http.pool sets shared connections)");
    if ((v = conf_get(http, "extendedMetrics")) && boolean(L, v, "http.extendedMetrics",
                                                           &s->extended_metrics) != 0)
        return -EINVAL;
    if (getenv("ARTILLERY_EXTENDED_HTTP_METRICS"))
        s->extended_metrics = true;
    if (compile_defaults(L, config, http) != 0)
        return -EINVAL;
    s->timeout_s = 10;
    v = conf_get(config, "timeout") ? conf_get(config, "timeout") : conf_get(http, "timeout");
    if (v && v->type != CONF_NULL) {
        if (number(L, v, "timeout (seconds)", &s->timeout_s) != 0)
            return -EINVAL;
        if (s->timeout_s <= 0) {
            conf_errf(L->err, v, "timeout must be more than 0 seconds");
            return -EINVAL;
        }
    }

    const conf_node *tls = conf_get(config, "tls");
    if (tls && tls->type != CONF_NULL && want_map(L, tls, "config.tls") != 0)
        return -EINVAL;
    conf_check_keys(tls, tls_keys, CU_ARRAY_LEN(tls_keys), "config.tls");
    s->tls_verify = true;
    if ((v = conf_get(tls, "rejectUnauthorized")) && boolean(L, v, "rejectUnauthorized", &s->tls_verify) != 0)
        return -EINVAL;
    if ((v = conf_get(tls, "ca"))) { /* our extension: a PEM file, relative to the script */
        if (v->type != CONF_STRING || !*v->str) {
            conf_errf(L->err, v, "tls.ca must be the path of a PEM file");
            return -EINVAL;
        }
        s->tls_ca = cu_path_join(s->dir, v->str);
        if (access(s->tls_ca, R_OK) != 0) {
            conf_errf(L->err, v, "tls.ca: cannot read %s: %s", s->tls_ca, strerror(errno));
            return -EINVAL;
        }
    }

    if ((v = conf_get(config, "processor")) && v->type == CONF_STRING) {
        char *path = cu_path_join(s->dir, v->str);
        if (access(path, R_OK) != 0)
            conf_warnf(v, "processor %s not found (cutover runs no JavaScript anyway)", path);
        free(path);
    }
    return 0;
}

/* ---- scenarios ----------------------------------------------------------------------------- */
static const char *const top_keys[] = {"config", "scenarios", "before", "after"};
static const char *const scenario_keys[] = {"name", "weight", "flow", "engine", "beforeScenario",
    "afterScenario", "beforeRequest", "afterResponse", "onError"};

static int scenario_weight(lt_loader *L, const conf_node *w, int *out)
{
    *out = 1;
    if (!w)
        return 0;
    cu_buf b = CU_BUF_INIT;
    if (!conf_is_scalar(w)) {
        conf_errf(L->err, w, "weight must be a number (got a %s)", conf_type_name(w->type));
        return -EINVAL;
    }
    if (w->type == CONF_STRING && strstr(w->str, "{{")) { /* templated, then parseInt */
        lt_tmpl *t = lt_tmpl_compile(w->str);
        lt_tmpl_render(t, NULL, &b);
        lt_tmpl_free(t);
    } else {
        lt_scalar_text(&b, w);
    }
    long v = js_parse_int(b.data ? b.data : "");
    cu_buf_free(&b);
    if (v < 0) {
        conf_errf(L->err, w, "weight must not be negative");
        return -EINVAL;
    }
    *out = v > 1000000 ? 1000000 : (int)v;
    return 0;
}

/* beforeScenario / afterScenario become function steps around the flow. */
static void add_hook_steps(lt_scenario *sc, const conf_node *before, const conf_node *after)
{
    size_t nb = before ? (before->type == CONF_SEQ ? before->n : 1) : 0;
    size_t na = after ? (after->type == CONF_SEQ ? after->n : 1) : 0;
    if (nb + na == 0)
        return;
    lt_step *steps = cu_calloc(nb + sc->nflow + na, sizeof *steps);
    for (size_t i = 0; i < nb; i++) {
        steps[i].kind = LT_STEP_FUNCTION;
        steps[i].function = cu_strdup((before->type == CONF_SEQ ? before->items[i] : before)->str);
    }
    memcpy(steps + nb, sc->flow, sc->nflow * sizeof *steps);
    for (size_t i = 0; i < na; i++) {
        steps[nb + sc->nflow + i].kind = LT_STEP_FUNCTION;
        steps[nb + sc->nflow + i].function =
            cu_strdup((after->type == CONF_SEQ ? after->items[i] : after)->str);
    }
    free(sc->flow);
    sc->flow = steps;
    sc->nflow += nb + na;
}

static int compile_scenario(lt_loader *L, const conf_node *n, size_t index, lt_scenario *sc)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a scenario must be a map with a flow (got a %s)", conf_type_name(n->type));
        return -EINVAL;
    }
    const conf_node *name = conf_get(n, "name"), *engine = conf_get(n, "engine");
    cu_buf b = CU_BUF_INIT;
    if (name && conf_is_scalar(name) && name->type != CONF_NULL)
        lt_scalar_text(&b, name);
    else
        cu_buf_appendf(&b, "%zu", index);
    sc->name = cu_buf_steal(&b);
    sc->created_metric = cu_asprintf("vusers.created_by_name.%s", sc->name);
    L->scenario = index;
    L->scenario_name = sc->name;
    if (engine && !(engine->type == CONF_STRING && !strcmp(engine->str, "http"))) {
        conf_errf(L->err, engine, "scenario '%s' uses engine '%s': cutover runs only HTTP scenarios",
                  sc->name, engine->str ? engine->str : "?");
        return -EINVAL;
    }
    conf_check_keys(n, scenario_keys, CU_ARRAY_LEN(scenario_keys), "scenario");
    if (scenario_weight(L, conf_get(n, "weight"), &sc->weight) != 0)
        return -EINVAL;
    const conf_node *flow = conf_get(n, "flow");
    if (!flow) {
        conf_errf(L->err, n, "scenario '%s' has no flow", sc->name);
        return -EINVAL;
    }
    const conf_node *before = conf_get(n, "beforeScenario"), *after = conf_get(n, "afterScenario");
    if (lt_loader_funcs(L, before, "beforeScenario") != 0 ||
        lt_loader_funcs(L, after, "afterScenario") != 0 ||
        lt_loader_funcs(L, conf_get(n, "beforeRequest"), "beforeRequest") != 0 ||
        lt_loader_funcs(L, conf_get(n, "afterResponse"), "afterResponse") != 0 ||
        lt_loader_funcs(L, conf_get(n, "onError"), "onError") != 0)
        return -EINVAL;
    if (lt_flow_compile(L, flow, &sc->flow, &sc->nflow) != 0)
        return -EINVAL;
    add_hook_steps(sc, before && before->type != CONF_NULL ? before : NULL,
                   after && after->type != CONF_NULL ? after : NULL);
    return 0;
}

/* --scenario-name: the one scenario every user runs (weights of the others
 * become 0): an exact name first, else the first whose name matches it as
 * a regular expression, as Artillery looks it up. */
static int pick_scenario(lt_loader *L, const char *want)
{
    lt_script *s = L->s;
    size_t found = s->nscenarios;
    for (size_t i = 0; i < s->nscenarios && found == s->nscenarios; i++)
        if (!strcmp(s->scenarios[i].name, want))
            found = i;
    regex_t re;
    if (found == s->nscenarios && regcomp(&re, want, REG_EXTENDED | REG_NOSUB) == 0) {
        for (size_t i = 0; i < s->nscenarios && found == s->nscenarios; i++)
            if (regexec(&re, s->scenarios[i].name, 0, NULL, 0) == 0)
                found = i;
        regfree(&re);
    }
    if (found == s->nscenarios) {
        snprintf(L->err, CU_ERRLEN, "%s: scenario '%s' not found (--scenario-name)", s->path, want);
        return -EINVAL;
    }
    for (size_t i = 0; i < s->nscenarios; i++)
        s->scenarios[i].weight = i == found ? 1 : 0;
    s->total_weight = 1;
    return 0;
}

static int compile_scenarios(lt_loader *L, const conf_node *doc, const char *only)
{
    lt_script *s = L->s;
    const conf_node *list = conf_get(doc, "scenarios");
    if (!list) {
        conf_errf(L->err, doc, "the script has no scenarios");
        return -EINVAL;
    }
    if (list->type != CONF_SEQ || list->n == 0) {
        conf_errf(L->err, list, "scenarios must be a non-empty list");
        return -EINVAL;
    }
    s->scenarios = cu_calloc(list->n, sizeof *s->scenarios);
    for (size_t i = 0; i < list->n; i++) {
        s->nscenarios++;
        if (compile_scenario(L, list->items[i], i, &s->scenarios[i]) != 0)
            return -EINVAL;
        s->total_weight += s->scenarios[i].weight;
    }
    /* top-level before: / after: {flow: [...]}, run once around the phases */
    static const char *const side_keys[] = {"flow", "name"};
    for (int k = 0; k < 2; k++) {
        const char *key = k == 0 ? "before" : "after";
        const conf_node *n = conf_get(doc, key);
        if (!n || n->type == CONF_NULL)
            continue;
        if (n->type != CONF_MAP || !conf_get(n, "flow")) {
            conf_errf(L->err, n, "%s must be a map with a flow: {flow: [...]}", key);
            return -EINVAL;
        }
        conf_check_keys(n, side_keys, CU_ARRAY_LEN(side_keys), key);
        lt_scenario *sc = cu_calloc(1, sizeof *sc);
        sc->name = cu_strdup(key);
        sc->created_metric = cu_asprintf("vusers.created_by_name.%s", key);
        *(k == 0 ? &s->before : &s->after) = sc;
        L->scenario = s->nscenarios + (size_t)k;
        L->scenario_name = key;
        if (lt_flow_compile(L, conf_get(n, "flow"), &sc->flow, &sc->nflow) != 0)
            return -EINVAL;
    }
    if (only)
        return pick_scenario(L, only);
    if (s->total_weight == 0) {
        conf_errf(L->err, list, "every scenario has weight 0: nothing would run");
        return -EINVAL;
    }
    return 0;
}

/* ---- warnings at the end ------------------------------------------------------------------- */
static void lint_vars(lt_loader *L)
{
    lt_script *s = L->s;
    for (size_t i = 0; i < L->nuses; i++) {
        const lt_use *u = &L->uses[i];
        bool seen = false, here = false;
        const char *elsewhere = NULL;
        for (size_t j = 0; j < i && !seen; j++)
            seen = L->uses[j].scenario == u->scenario && !strcmp(L->uses[j].name, u->name);
        if (seen || !strcmp(u->name, "target") || json_object_get(s->variables, u->name) ||
            lt_payload_defines(s, u->name))
            continue;
        for (size_t j = 0; j < L->ndefs; j++) {
            if (strcmp(L->defs[j].name, u->name))
                continue;
            if (L->defs[j].scenario == u->scenario || L->defs[j].scenario == s->nscenarios)
                here = true; /* the before flow (index nscenarios) seeds every user */
            else if (!elsewhere && L->defs[j].scenario < s->nscenarios)
                elsewhere = s->scenarios[L->defs[j].scenario].name;
        }
        if (here)
            continue;
        if (elsewhere)
            conf_warnf(u->at, "'%s' is captured only in scenario '%s': a virtual user runs one "
                       "scenario, so here it renders as undefined", u->name, elsewhere);
        else
            conf_warnf(u->at, "'%s' is never defined (not in config.variables or a payload, not captured): it "
                       "renders as undefined", u->name);
    }
}

static void final_warnings(lt_loader *L)
{
    lint_vars(L);
}

static void loader_free(lt_loader *L)
{
    for (size_t i = 0; i < L->nfuncs; i++)
        free(L->funcs[i]);
    free(L->funcs);
    for (size_t i = 0; i < L->nuses; i++)
        free(L->uses[i].name);
    free(L->uses);
    for (size_t i = 0; i < L->ndefs; i++)
        free(L->defs[i].name);
    free(L->defs);
    free(L->target_host);
    free(L->target_port);
}

/* ---- the pipeline -------------------------------------------------------------------------- */
/* Parses JSON given on the command line; it must be an object. */
static conf_node *cli_json(const char *text, const char *what, char *err)
{
    conf_node *n = conf_parse(text, strlen(text), what, err);
    if (n && n->type != CONF_MAP) {
        snprintf(err, CU_ERRLEN, "%s must be a JSON object", what);
        conf_free(n);
        return NULL;
    }
    return n;
}

/* Steps 1-8 of notes 1.1: the document as Artillery would run it. */
static int prepare(lt_loader *L, const lt_load_opts *o)
{
    lt_script *s = L->s;
    conf_node *doc = s->doc;
    if (doc->type != CONF_MAP) {
        conf_errf(L->err, doc, "a script must be a map with config and scenarios (got a %s)",
                  conf_type_name(doc->type));
        return -EINVAL;
    }
    conf_check_keys(doc, top_keys, CU_ARRAY_LEN(top_keys), "the script");
    conf_node *config = conf_get(doc, "config");
    if (!config || config->type == CONF_NULL) {
        conf_set(doc, "config", conf_new_map());
        config = conf_get(doc, "config");
    }
    if (want_map(L, config, "config") != 0)
        return -EINVAL;
    if (o->environment) {
        s->environment = cu_strdup(o->environment);
        const conf_node *env = conf_get(conf_get(config, "environments"), o->environment);
        if (env && env->type == CONF_MAP) {
            conf_node *copy = conf_clone(env);
            conf_merge(config, copy, false);
            conf_free(copy);
        } else {
            cu_warn("environment %s is set but is not defined in the script", o->environment);
        }
    }
    if (o->target)
        conf_set(config, "target", conf_new_string(o->target));
    if (o->overrides) {
        conf_node *ov = cli_json(o->overrides, "--overrides", L->err);
        if (!ov)
            return -EINVAL;
        conf_merge(doc, ov, true);
        conf_free(ov);
        config = conf_get(doc, "config");
        if (want_map(L, config, "config") != 0)
            return -EINVAL;
    }
    if (o->variables) {
        conf_node *vv = cli_json(o->variables, "--variables", L->err);
        if (!vv)
            return -EINVAL;
        conf_node *vars = conf_get(config, "variables");
        if (!vars || vars->type != CONF_MAP) {
            conf_set(config, "variables", conf_new_map());
            vars = conf_get(config, "variables");
        }
        for (size_t i = 0; i < vv->n; i++)
            conf_set(vars, conf_key(vv, i), conf_clone(vv->items[i]));
        conf_free(vv);
    }
    json_t *vars = json_object();
    if (s->environment)
        json_object_set_new(vars, "$environment", json_string(s->environment));
    lt_ctx ctx = {vars, NULL};
    template_config(config, &ctx);
    json_decref(vars);
    const conf_node *target = conf_get(config, "target");
    if (!target || target->type == CONF_NULL || (target->type == CONF_STRING && !*target->str)) {
        conf_errf(L->err, doc, "No target specified and no environment chosen");
        return -EINVAL;
    }
    if (target->type != CONF_STRING) {
        conf_errf(L->err, target, "config.target must be a URL string (got a %s)",
                  conf_type_name(target->type));
        return -EINVAL;
    }
    s->target = cu_strdup(target->str);
    lt_loader_set_target(L, s->target);
    return 0;
}

lt_script *lt_script_load(const lt_load_opts *o, char err[CU_ERRLEN])
{
    err[0] = '\0';
    lt_script *s = cu_calloc(1, sizeof *s);
    lt_loader L = {.s = s, .err = err, .default_strict = true};
    s->path = cu_strdup(o->path);
    s->dir = cu_dirname(o->path);
    s->tls_verify = true;
    s->doc = conf_load(o->path, err);
    if (!s->doc || prepare(&L, o) != 0)
        goto fail;
    const conf_node *config = conf_get(s->doc, "config");
    if (compile_config(&L, config) != 0 || compile_scenarios(&L, s->doc, o->scenario_name) != 0)
        goto fail;
    if (o->solo) { /* Artillery's --solo: one arrival in one second */
        for (size_t i = 0; i < s->nphases; i++)
            free(s->phases[i].name);
        s->phases = cu_realloc(s->phases, sizeof *s->phases);
        s->phases[0] = (lt_phase){.kind = LT_PHASE_COUNT, .duration_s = 1, .count = 1};
        s->nphases = 1;
    }
    if (o->insecure) {
        const conf_node *ru = conf_get(conf_get(config, "tls"), "rejectUnauthorized");
        if (ru && ru->type == CONF_BOOL && ru->b)
            conf_warnf(ru, "TLS certificate validation enabled in the test script, but explicitly "
                       "disabled with -k/--insecure.");
        s->tls_verify = false;
    }
    final_warnings(&L);
    loader_free(&L);
    return s;
fail:
    if (!err[0])
        snprintf(err, CU_ERRLEN, "%s: cannot load the script", o->path);
    loader_free(&L);
    lt_script_free(s);
    return NULL;
}

void lt_script_free(lt_script *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nscenarios; i++) {
        lt_steps_free(s->scenarios[i].flow, s->scenarios[i].nflow);
        free(s->scenarios[i].name);
        free(s->scenarios[i].created_metric);
    }
    free(s->scenarios);
    for (int k = 0; k < 2; k++) {
        lt_scenario *sc = k == 0 ? s->before : s->after;
        if (!sc)
            continue;
        lt_steps_free(sc->flow, sc->nflow);
        free(sc->name);
        free(sc->created_metric);
        free(sc);
    }
    for (size_t i = 0; i < s->nphases; i++)
        free(s->phases[i].name);
    free(s->phases);
    json_decref(s->variables);
    lt_payloads_free(s->payloads, s->npayloads);
    lt_kvs_free(s->default_headers, s->ndefault_headers);
    lt_kvs_free(s->default_cookies, s->ndefault_cookies);
    lt_plugins *pl = &s->plugins;
    for (size_t i = 0; i < pl->nthresholds; i++)
        free(pl->thresholds[i].metric);
    free(pl->thresholds);
    for (size_t i = 0; i < pl->nconditions; i++) {
        free(pl->conditions[i].text);
        lt_expr_free(pl->conditions[i].expr);
    }
    free(pl->conditions);
    free(pl->mbe_prefix);
    free(s->tls_ca);
    free(s->target);
    free(s->environment);
    conf_free(s->doc);
    free(s->path);
    free(s->dir);
    free(s);
}
