/* conf: configuration documents (YAML, and JSON as YAML's subset) as trees
 * of nodes that remember where they came from, so that every error about a
 * config or script can say file:line:column.
 *
 * Plain scalars are typed as YAML 1.2's core schema does (null, true/false,
 * integers, floats); quoted scalars are strings. Anchors and aliases are
 * expanded (the alias gets a copy); merge keys (<<) are honoured.
 * A tree owns all its memory; conf_free releases it.
 */
#ifndef CUTOVER_CONF_H
#define CUTOVER_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

typedef enum { CONF_NULL, CONF_BOOL, CONF_INT, CONF_FLOAT, CONF_STRING, CONF_SEQ, CONF_MAP } conf_type;

typedef struct conf_node conf_node;
struct conf_node {
    conf_type type;
    const char *file;     /* shared, owned by the document root */
    int line, col;        /* 1-based position of the node's first character */
    char *str;            /* scalars: the text as written (strings: the value) */
    char quote;           /* '"' or '\'' for quoted scalars (col is the quote's), else 0 */
    bool b;               /* CONF_BOOL */
    long long i;          /* CONF_INT */
    double f;             /* CONF_FLOAT and CONF_INT */
    size_t n;             /* CONF_SEQ / CONF_MAP: number of items */
    conf_node **items;    /* the items (map values) */
    conf_node **keys;     /* CONF_MAP: key nodes (scalars), parallel to items */
};

/* Parses text (YAML or JSON). `file` names it in messages ("--overrides" for
 * command-line JSON). Returns NULL with err = "file:line:col: message". An
 * empty document gives a CONF_NULL node. */
conf_node *conf_parse(const char *text, size_t len, const char *file, char err[CU_ERRLEN]);
/* Reads and parses a file. */
conf_node *conf_load(const char *path, char err[CU_ERRLEN]);
void conf_free(conf_node *n);
conf_node *conf_clone(const conf_node *n);

/* Map lookup by key (NULL if absent or n is not a map). */
conf_node *conf_get(const conf_node *map, const char *key);
/* Key of a map's i-th item. */
const char *conf_key(const conf_node *map, size_t i);
/* Sets (replacing) or adds map[key] = value; the map takes ownership of value. */
void conf_set(conf_node *map, const char *key, conf_node *value);
/* A new string scalar (not positioned: file "<cli>"). */
conf_node *conf_new_string(const char *s);
conf_node *conf_new_map(void);

/* Deep merge of src into dst (src is not modified). Maps merge key by key.
 * Sequences: replace (arrays_replace) or merge index by index as lodash's
 * merge does. Scalars replace. */
void conf_merge(conf_node *dst, const conf_node *src, bool arrays_replace);

/* Scalar helpers. conf_number accepts ints, floats and numeric strings. */
bool conf_is_scalar(const conf_node *n);
bool conf_number(const conf_node *n, double *out);
const char *conf_type_name(conf_type t);
/* A duration into milliseconds: a number of seconds, or a string of a
 * decimal number and an optional unit right after it (ms, s, m or min, h,
 * d; none is seconds): "500ms", "30s", "1.5m", "48h", "7d", "30". False for
 * anything else, a negative one, or one past 1e15 ms; the caller says what
 * it wanted. */
bool conf_duration_ms(const conf_node *n, uint64_t *out_ms);

/* "file:line:col: " + message into err. */
void conf_errf(char err[CU_ERRLEN], const conf_node *at, const char *fmt, ...) CU_PRINTF(3, 4);
/* Prints a warning "file:line:col: message" through cu_warn. */
void conf_warnf(const conf_node *at, const char *fmt, ...) CU_PRINTF(2, 3);

/* Warns about each key of `map` not in `allowed`, naming the nearest
 * allowed key when one is close: "file:line:col: unknown key 'phase' in
 * config (did you mean 'phases'?)". `where` names the map in the message.
 * Returns the number of unknown keys. */
size_t conf_check_keys(const conf_node *map, const char *const *allowed, size_t nallowed,
                       const char *where);

#endif
