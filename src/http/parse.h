/* http/parse: one HTTP/1.x message at a time with llhttp, no sockets.
 * Internal to the http module (client.c, server.c) and its unit tests.
 *
 * hp_feed() takes bytes in any split and stops right after a complete
 * message, saying how much it used; the rest belongs to the next message.
 * The message stays readable (headers, url, body) until the first byte of
 * the next message is fed: buffers are cleared at llhttp's on_message_begin,
 * never before, and keep their capacity, so a warm parser does not allocate.
 *
 * Responses: interim 1xx (except 101) are skipped; 1xx/204/304 and answers
 * to HEAD (`head`) have no body whatever their headers say; a body without
 * Content-Length or chunking runs to the end of the connection (hp_eof).
 * Trailers of chunked messages are parsed and dropped.
 */
#ifndef CUTOVER_HTTP_PARSE_H
#define CUTOVER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "http/http.h"
#include "llhttp.h"

enum {
    HP_MORE = 0,             /* all bytes used, message not complete yet */
    HP_DONE = 1,             /* a message is complete */
    HP_ERR = -1,             /* malformed: see hpe */
    HP_ERR_HEAD = -2,        /* head larger than max_header (431) */
    HP_ERR_BODY = -3,        /* body larger than max_body (413) */
};
/* hpe values of our own, beyond llhttp's errno range */
enum { HP_HPE_HEADER_OVERFLOW = 1000, HP_HPE_BODY_TOO_LARGE = 1001 };

typedef struct hp_span {
    uint32_t name_off, name_len, value_off, value_len;
} hp_span;

typedef struct hp_msg {
    llhttp_t ll;
    /* settings, set by the owner */
    bool response;
    bool head;                 /* response to a HEAD request: no body */
    bool keep_body;            /* else the body is only counted */
    size_t max_header;
    uint64_t max_body;
    void (*on_head)(struct hp_msg *m); /* optional: head of a final message parsed */
    void *owner;
    /* the current message */
    cu_buf raw;                /* url (requests), then names and values, NUL-separated */
    hp_span *spans;
    size_t nspans, cap_spans;
    http_header *headers;      /* built when the head is complete */
    size_t nheaders, cap_headers;
    size_t url_len;
    cu_buf body;
    uint64_t body_len;
    size_t head_bytes;
    int status;
    bool in_message;           /* bytes of a message have been seen */
    bool headers_done;
    bool in_value;
    bool done;
    bool keep_alive;
    bool upgrade;
    bool expect_continue;
    uint8_t http_minor;
    uint64_t t_headers_ns;
    int hpe;                   /* llhttp_errno of the last error */
} hp_msg;

void hp_init(hp_msg *m, bool response, size_t max_header, uint64_t max_body);
void hp_free(hp_msg *m);
/* Feeds bytes: HP_MORE (all used), HP_DONE (*used bytes made up the end of
 * a message), or HP_ERR*. After HP_DONE the next call starts a new message;
 * after an error the parser must be re-initialised (hp_reset). */
int hp_feed(hp_msg *m, const char *data, size_t len, size_t *used);
/* The peer closed: HP_DONE if that completes a close-delimited message,
 * HP_MORE if no message was in progress, HP_ERR (hpe) if one was cut. */
int hp_eof(hp_msg *m);
/* Back to a fresh state (new connection), buffers kept. */
void hp_reset(hp_msg *m);
/* "HPE_INVALID_CONSTANT" ... for m->hpe. */
const char *hp_errno_name(int hpe);

#endif
