/* loadtest/script_int.h: what the script loader's files share (script.c:
 * the pipeline, config and plugins; script_flow.c: scenarios' steps;
 * tmpl.c: templates). Not for the engine.
 */
#ifndef CUTOVER_LOADTEST_SCRIPT_INT_H
#define CUTOVER_LOADTEST_SCRIPT_INT_H

#include "loadtest/script.h"

/* Number of function placeholders ($randomNumber, $randomString). */
size_t lt_tmpl_nfuncs(const lt_tmpl *t);

/* A variable used by a template, for the "never defined" lint. */
typedef struct lt_use {
    char *name;                 /* root name ("a" for "a.b[0]") */
    size_t scenario;
    const conf_node *at;
} lt_use;

typedef struct lt_defn {       /* a capture's `as` */
    char *name;                 /* root name */
    size_t scenario;
} lt_defn;

/* State of one load. Warnings that must appear once are counted here and
 * printed by script.c at the end. */
typedef struct lt_loader {
    lt_script *s;
    char *err;                  /* CU_ERRLEN: the first error */
    bool default_strict;        /* config.(http.)defaults.strictCapture */
    size_t scenario;            /* index of the scenario being compiled */
    const char *scenario_name;
    /* processor functions referenced anywhere (no JavaScript runs) */
    char **funcs;
    size_t nfuncs;
    bool warned_parallel;
    /* config.target's host and port, for metrics-by-endpoint names */
    char *target_host, *target_port;
    /* lint */
    lt_use *uses;
    size_t nuses;
    lt_defn *defs;
    size_t ndefs;
} lt_loader;

/* Compiles a flow (a list of steps; nested lists are flattened one level,
 * as Artillery does for YAML aliases). Returns 0 or -EINVAL with L->err. */
int lt_flow_compile(lt_loader *L, const conf_node *flow, lt_step **out, size_t *n);
void lt_steps_free(lt_step *steps, size_t n);
/* Records processor function names from a string or a list of strings.
 * Returns 0 or -EINVAL (wrong type) with L->err. */
int lt_loader_funcs(lt_loader *L, const conf_node *n, const char *what);
/* Records the variables every template string under n reads. */
void lt_loader_uses(lt_loader *L, const conf_node *n);
/* "true" / "5" / "1.5" / the string: a scalar as JavaScript's String(x). */
void lt_scalar_text(cu_buf *out, const conf_node *n);
/* A template from a scalar (NULL with L->err for maps and lists). */
lt_tmpl *lt_loader_tmpl(lt_loader *L, const conf_node *n, const char *what);
/* Name/value pairs from a map of scalars; lower=true lower-cases names.
 * Returns 0 or -EINVAL with L->err. */
int lt_loader_kvs(lt_loader *L, const conf_node *map, const char *what, bool lower, lt_kv **out,
                  size_t *n);
void lt_kvs_free(lt_kv *kv, size_t n);
/* Plain JSON from a node (strings as written: templates stay text). */
json_t *lt_conf_json(const conf_node *n);
/* "a" for "a.b[0]" (allocated). */
char *lt_root_name(const char *name);
/* Seconds from a number (seconds), a numeric string (seconds) or an
 * ms-style string ("500ms", "30s", "10min", "5m", "1h", "2d"). False when
 * it is none of these or negative. */
bool lt_parse_duration(const conf_node *n, double *seconds);

/* One HTTP step (script_req.c). Returns 0 or -EINVAL with L->err; on error
 * q is partly built and lt_request_free releases it. */
/* Remembers config.target's host and port for endpoint names. */
void lt_loader_set_target(lt_loader *L, const char *target);
int lt_request_compile(lt_loader *L, lt_request *q, const char *method, const conf_node *n);
void lt_request_free(lt_request *q);

/* A think jitter: "N%" (*pct) or N milliseconds. 0 or -EINVAL with L->err. */
int lt_parse_jitter(lt_loader *L, const conf_node *n, double *v, bool *pct);
/* A JavaScript regular expression (pattern, flags, group) as POSIX ERE
 * into c->re (script_req.c). Returns 0 or -EINVAL with L->err. */
int lt_loader_regexp(lt_loader *L, lt_capture *c, const conf_node *pat, const conf_node *flags,
                     const conf_node *group);
/* A request's `expect:` (a list of checks or a map; script_expect.c):
 * compiled when the expect plugin is on, else warned about as ignored.
 * With expectDefault200, a request without checks expects 200. */
int lt_expects_compile(lt_loader *L, lt_request *q, const conf_node *n);
void lt_expect_free(lt_expect *e);

/* config.payload, an object or a list of them (script_payload.c): reads
 * the files now. Returns 0 or -EINVAL with L->err. */
int lt_payloads_compile(lt_loader *L, const conf_node *n);
void lt_payloads_free(lt_payload *p, size_t n);
/* True when a payload sets variable `name` (a field, or a loadAll name). */
bool lt_payload_defines(const lt_script *s, const char *name);

#endif
