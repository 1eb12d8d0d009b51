/* http/parse.c: llhttp driven one message at a time (see parse.h).
 *
 * llhttp hands us spans of the input; names and values are copied into
 * `raw` (they may straddle reads), with offsets in `spans`, and turned into
 * an http_header array once the head is complete: `raw` does not grow after
 * that for this message (trailers are dropped), so the pointers hold.
 * on_message_complete pauses the parser (HPE_PAUSED) so that hp_feed
 * returns after each message and the owner acts on it outside llhttp.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parse.h"

static hp_msg *M(llhttp_t *p)
{
    return p->data;
}

/* Counts head bytes; -1 (HPE_USER) once over the limit. */
static int count_head(hp_msg *m, size_t n)
{
    m->head_bytes += n;
    return m->head_bytes > m->max_header ? -1 : 0;
}

static int cb_message_begin(llhttp_t *p)
{
    hp_msg *m = M(p);
    cu_buf_reset(&m->raw);
    cu_buf_reset(&m->body);
    m->nspans = m->nheaders = 0;
    m->url_len = 0;
    m->body_len = 0;
    m->head_bytes = 0;
    m->status = 0;
    m->in_message = true;
    m->headers_done = m->in_value = m->done = false;
    m->keep_alive = m->upgrade = m->expect_continue = false;
    m->t_headers_ns = 0;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    hp_msg *m = M(p);
    cu_buf_append(&m->raw, at, len);
    return count_head(m, len);
}

static int cb_url_complete(llhttp_t *p)
{
    hp_msg *m = M(p);
    m->url_len = m->raw.len;
    cu_buf_appendc(&m->raw, '\0');
    return 0;
}

static int cb_status(llhttp_t *p, const char *at, size_t len)
{
    return count_head(M(p), len);
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    hp_msg *m = M(p);
    if (m->headers_done) /* a trailer */
        return count_head(m, len);
    if (!m->in_value) {
        if (m->nspans == m->cap_spans) {
            m->cap_spans = m->cap_spans ? m->cap_spans * 2 : 16;
            m->spans = cu_realloc(m->spans, m->cap_spans * sizeof *m->spans);
        }
        m->spans[m->nspans].name_off = (uint32_t)m->raw.len;
        m->in_value = true; /* from now on the current span is open */
    }
    cu_buf_append(&m->raw, at, len);
    return count_head(m, len);
}

/* RFC 9110 token characters; llhttp 8 in loose mode lets spaces through
 * ("X : y"), which servers must refuse (request smuggling). */
static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (!strchr("!#$%&'*+-.^_`|~", ch) || ch == 0)
            return false;
    }
    return true;
}

static int cb_header_field_complete(llhttp_t *p)
{
    hp_msg *m = M(p);
    if (m->headers_done)
        return 0;
    hp_span *s = &m->spans[m->nspans];
    s->name_len = (uint32_t)(m->raw.len - s->name_off);
    if (!is_token(m->raw.data + s->name_off, s->name_len)) {
        m->hpe = HPE_INVALID_HEADER_TOKEN;
        return -1;
    }
    cu_buf_appendc(&m->raw, '\0');
    s->value_off = (uint32_t)m->raw.len;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    hp_msg *m = M(p);
    if (!m->headers_done)
        cu_buf_append(&m->raw, at, len);
    return count_head(m, len + 4); /* ": " and CRLF */
}

static int cb_header_value_complete(llhttp_t *p)
{
    hp_msg *m = M(p);
    if (m->headers_done)
        return 0;
    hp_span *s = &m->spans[m->nspans];
    s->value_len = (uint32_t)(m->raw.len - s->value_off);
    cu_buf_appendc(&m->raw, '\0');
    m->nspans++;
    m->in_value = false;
    return 0;
}

static bool value_has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return true;
    return false;
}

static int cb_headers_complete(llhttp_t *p)
{
    hp_msg *m = M(p);
    m->headers_done = true;
    m->status = p->status_code;
    if (m->nspans > m->cap_headers) {
        m->cap_headers = m->nspans;
        m->headers = cu_realloc(m->headers, m->cap_headers * sizeof *m->headers);
    }
    for (size_t i = 0; i < m->nspans; i++) {
        const hp_span *s = &m->spans[i];
        m->headers[i] = (http_header){m->raw.data + s->name_off, s->name_len,
                                      m->raw.data + s->value_off, s->value_len};
    }
    m->nheaders = m->nspans;
    if (m->response) {
        int st = m->status;
        bool interim = st >= 100 && st < 200 && st != 101;
        if (interim)
            return 1;
        m->t_headers_ns = cu_now_ns();
        if (m->on_head)
            m->on_head(m);
        return (m->head || st == 204 || st == 304) ? 1 : 0;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > m->max_body) {
        m->hpe = HP_HPE_BODY_TOO_LARGE;
        return -1;
    }
    for (size_t i = 0; i < m->nheaders; i++) {
        const http_header *h = &m->headers[i];
        if (h->name_len == 6 && strncasecmp(h->name, "expect", 6) == 0 &&
            value_has_token(h->value, h->value_len, "100-continue"))
            m->expect_continue = true;
    }
    m->t_headers_ns = cu_now_ns();
    if (m->on_head)
        m->on_head(m);
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    hp_msg *m = M(p);
    m->body_len += len;
    if (m->body_len > m->max_body) {
        m->hpe = HP_HPE_BODY_TOO_LARGE;
        return -1;
    }
    if (m->keep_body)
        cu_buf_append(&m->body, at, len);
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    hp_msg *m = M(p);
    if (m->response && p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        m->in_message = false; /* interim response: wait for the real one */
        return 0;
    }
    m->in_message = false;
    m->done = true;
    m->keep_alive = llhttp_should_keep_alive(p) != 0;
    m->http_minor = p->http_minor;
    if (m->status == 0)
        m->status = p->status_code;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_status = cb_status,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
    .on_url_complete = cb_url_complete,
    .on_header_field_complete = cb_header_field_complete,
    .on_header_value_complete = cb_header_value_complete,
};

void hp_init(hp_msg *m, bool response, size_t max_header, uint64_t max_body)
{
    memset(m, 0, sizeof *m);
    m->response = response;
    m->max_header = max_header;
    m->max_body = max_body;
    hp_reset(m);
}

void hp_reset(hp_msg *m)
{
    llhttp_init(&m->ll, m->response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
    m->ll.data = m;
    m->in_message = m->done = m->headers_done = m->in_value = false;
    m->hpe = 0;
}

void hp_free(hp_msg *m)
{
    cu_buf_free(&m->raw);
    cu_buf_free(&m->body);
    free(m->spans);
    free(m->headers);
    m->spans = NULL;
    m->headers = NULL;
    m->cap_spans = m->cap_headers = 0;
}

static int error_of(hp_msg *m, llhttp_errno_t e)
{
    if (m->hpe == HP_HPE_BODY_TOO_LARGE)
        return HP_ERR_BODY;
    if (m->hpe) /* set by one of our callbacks */
        return HP_ERR;
    if (e == HPE_USER && m->head_bytes > m->max_header) {
        m->hpe = HP_HPE_HEADER_OVERFLOW;
        return HP_ERR_HEAD;
    }
    m->hpe = e;
    return HP_ERR;
}

int hp_feed(hp_msg *m, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (len == 0)
        return HP_MORE;
    llhttp_errno_t e = llhttp_execute(&m->ll, data, len);
    switch (e) {
    case HPE_OK:
        *used = len;
        return HP_MORE;
    case HPE_PAUSED:
        *used = (size_t)(llhttp_get_error_pos(&m->ll) - data);
        llhttp_resume(&m->ll);
        return HP_DONE;
    case HPE_PAUSED_UPGRADE:
        /* 101 or an Upgrade/CONNECT request: what follows is not HTTP. */
        *used = (size_t)(llhttp_get_error_pos(&m->ll) - data);
        m->upgrade = true;
        m->keep_alive = false;
        if (!m->done) {
            m->done = true;
            m->in_message = false;
            if (m->status == 0)
                m->status = m->ll.status_code;
        }
        return HP_DONE;
    default:
        return error_of(m, e);
    }
}

int hp_eof(hp_msg *m)
{
    if (!m->in_message)
        return HP_MORE;
    llhttp_errno_t e = llhttp_finish(&m->ll);
    if (e == HPE_PAUSED) {
        llhttp_resume(&m->ll);
        return HP_DONE;
    }
    if (e == HPE_OK)
        return m->done ? HP_DONE : HP_MORE;
    return error_of(m, e);
}

const char *hp_errno_name(int hpe)
{
    if (hpe == HP_HPE_BODY_TOO_LARGE)
        return "HPE_BODY_TOO_LARGE";
    if (hpe == HP_HPE_HEADER_OVERFLOW)
        return "HPE_HEADER_OVERFLOW";
    if (hpe < 0 || hpe > HPE_CB_CHUNK_EXTENSION_VALUE_COMPLETE)
        return "HPE_UNKNOWN";
    return llhttp_errno_name((llhttp_errno_t)hpe);
}
