/* Unit tests for http parsing without sockets: every message is fed whole,
 * split at every position (prefix + rest) and one byte at a time, and each
 * way must give the same messages (a canonical dump) as written in the test.
 * Also: URLs, error names, status texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "http/parse.h"

typedef struct pcase {
    const char *name;
    const char *raw;
    bool response;
    bool head;
    bool eof;              /* the peer closes after raw */
    const char *expect;    /* dump of every message, or "...ERR:<name>" */
    size_t max_header;     /* 0: 64 KiB */
    uint64_t max_body;     /* 0: 1 MiB */
} pcase;

static void dump_msg(const hp_msg *m, cu_buf *out)
{
    if (m->response)
        cu_buf_appendf(out, "%d", m->status);
    else
        cu_buf_appendf(out, "%s %.*s", llhttp_method_name((llhttp_method_t)m->ll.method),
                       (int)m->url_len, m->raw.data);
    for (size_t i = 0; i < m->nheaders; i++)
        cu_buf_appendf(out, " [%.*s: %.*s]", (int)m->headers[i].name_len, m->headers[i].name,
                       (int)m->headers[i].value_len, m->headers[i].value);
    cu_buf_appendf(out, " body=%.*s ka=%d", (int)m->body.len, m->body.data ? m->body.data : "",
                   m->keep_alive);
    if ((uint64_t)m->body.len != m->body_len)
        cu_buf_appendf(out, " BODYLEN-MISMATCH");
    cu_buf_appends(out, "\n");
}

static void dump_err(const hp_msg *m, int r, cu_buf *out)
{
    if (r == HP_ERR_HEAD)
        cu_buf_appends(out, "ERR:431");
    else if (r == HP_ERR_BODY)
        cu_buf_appends(out, "ERR:413");
    else
        cu_buf_appendf(out, "ERR:%s", hp_errno_name(m->hpe));
}

/* Feeds raw cut at the given positions (sorted, exclusive of 0 and len). */
static void run_pieces(const pcase *c, const size_t *cuts, size_t ncuts, cu_buf *out)
{
    hp_msg m;
    hp_init(&m, c->response, c->max_header ? c->max_header : 65536,
            c->max_body ? c->max_body : (1u << 20));
    m.keep_body = true;
    m.head = c->head;
    size_t len = strlen(c->raw), start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        const char *p = c->raw + start;
        size_t n = end - start;
        start = end;
        while (n > 0) {
            size_t used;
            int r = hp_feed(&m, p, n, &used);
            if (r == HP_MORE)
                break;
            if (r < 0) {
                dump_err(&m, r, out);
                goto done;
            }
            dump_msg(&m, out);
            p += used;
            n -= used;
        }
    }
    if (c->eof) {
        int r = hp_eof(&m);
        if (r == HP_DONE)
            dump_msg(&m, out);
        else if (r < 0)
            dump_err(&m, r, out);
    }
done:
    hp_free(&m);
}

static void check_case(const pcase *c)
{
    size_t len = strlen(c->raw);
    cu_buf whole = CU_BUF_INIT, got = CU_BUF_INIT;
    run_pieces(c, NULL, 0, &whole);
    if (strcmp(whole.data ? whole.data : "", c->expect) != 0)
        fail_msg("%s: whole message\n got: %s\nwant: %s", c->name, whole.data, c->expect);
    for (size_t i = 1; i < len; i++) {
        cu_buf_reset(&got);
        run_pieces(c, &i, 1, &got);
        if (strcmp(got.data ? got.data : "", c->expect) != 0)
            fail_msg("%s: split at %zu\n got: %s\nwant: %s", c->name, i, got.data, c->expect);
    }
    size_t *cuts = calloc(len ? len : 1, sizeof *cuts);
    for (size_t i = 1; i < len; i++)
        cuts[i - 1] = i;
    cu_buf_reset(&got);
    run_pieces(c, cuts, len ? len - 1 : 0, &got);
    if (strcmp(got.data ? got.data : "", c->expect) != 0)
        fail_msg("%s: byte by byte\n got: %s\nwant: %s", c->name, got.data, c->expect);
    free(cuts);
    cu_buf_free(&whole);
    cu_buf_free(&got);
}

static const pcase responses[] = {
    {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", true, false,
     false, "200 [Content-Length: 5] [X-A: b] body=hello ka=1\n", 0, 0},
    {"chunked+ext+trailers",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n"
     "6;x;y=\"q\"\r\n world\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
     true, false, false, "200 [Transfer-Encoding: chunked] body=hello world ka=1\n", 0, 0},
    {"head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, true, false,
     "200 [Content-Length: 100] body= ka=1\n", 0, 0},
    {"204", "HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n", true, false, false,
     "204 [Server: t] body= ka=1\n", 0, 0},
    {"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", true, false,
     false, "204 [Content-Length: 7] body= ka=1\n", 0, 0},
    {"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n", true, false,
     false, "304 [Content-Length: 10] [ETag: \"x\"] body= ka=1\n", 0, 0},
    {"100-continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     true, false, false, "200 [Content-Length: 2] body=ok ka=1\n", 0, 0},
    {"103 then 201",
     "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\n"
     "Content-Length: 0\r\n\r\n",
     true, false, false, "201 [Content-Length: 0] body= ka=1\n", 0, 0},
    {"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", true,
     false, true, "200 [Content-Type: text/plain] body=until close ka=0\n", 0, 0},
    {"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", true, false, false,
     "200 [Content-Length: 3] body=abc ka=0\n", 0, 0},
    {"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
     "Content-Length: 1\r\n\r\nx", true, false, false,
     "503 [Connection: close] [Content-Length: 1] body=x ka=0\n", 0, 0},
    {"empty value, two responses",
     "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 1\r\n\r\na"
     "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nbc",
     true, false, false,
     "200 [X-Empty: ] [Content-Length: 1] body=a ka=1\n404 [Content-Length: 2] body=bc ka=1\n", 0,
     0},
    /* malformed */
    {"garbage", "XYZ/1.1 200 OK\r\n\r\n", true, false, false, "ERR:HPE_INVALID_CONSTANT", 0, 0},
    {"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", true, false, false, "ERR:HPE_INVALID_STATUS", 0, 0},
    {"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true, false,
     false, "ERR:HPE_INVALID_CHUNK_SIZE", 0, 0},
    {"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, false, true,
     "ERR:HPE_INVALID_EOF_STATE", 0, 0},
    {"truncated head", "HTTP/1.1 200 OK\r\nContent-Le", true, false, true,
     "ERR:HPE_INVALID_EOF_STATE", 0, 0},
    {"truncated chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true,
     false, true, "ERR:HPE_INVALID_EOF_STATE", 0, 0},
    {"head too large", "HTTP/1.1 200 OK\r\nX-Big: 0123456789012345678901234567890123456789\r\n\r\n",
     true, false, false, "ERR:431", 32, 0},
};

static const pcase requests[] = {
    {"get with query", "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n", false, false, false,
     "GET /a/b?x=1&y=2 [Host: h] body= ka=1\n", 0, 0},
    {"post content-length", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody", false,
     false, false, "POST /p [Host: h] [Content-Length: 4] body=body ka=1\n", 0, 0},
    {"post chunked",
     "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\n"
     "T: v\r\n\r\n",
     false, false, false, "POST /c [Transfer-Encoding: chunked] body=abcde ka=1\n", 0, 0},
    {"pipelined",
     "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\n"
     "Connection: close\r\n\r\n",
     false, false, false,
     "GET /1 body= ka=1\nPOST /2 [Content-Length: 2] body=hi ka=1\n"
     "GET /3 [Connection: close] body= ka=0\n",
     0, 0},
    {"http/1.0", "GET / HTTP/1.0\r\n\r\n", false, false, false, "GET / body= ka=0\n", 0, 0},
    {"http/1.0 keep-alive", "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, false,
     false, "HEAD / [Connection: keep-alive] body= ka=1\n", 0, 0},
    /* malformed */
    {"length and chunked",
     "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false,
     false, false, "ERR:HPE_UNEXPECTED_CONTENT_LENGTH", 0, 0},
    {"bad method", "BR EW / HTTP/1.1\r\n\r\n", false, false, false, "ERR:HPE_INVALID_METHOD", 0, 0},
    {"bad header", "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", false, false, false,
     "ERR:HPE_INVALID_HEADER_TOKEN", 0, 0},
    {"space before colon", "GET / HTTP/1.1\r\nX : y\r\n\r\n", false, false, false,
     "ERR:HPE_INVALID_HEADER_TOKEN", 0, 0},
    {"empty header name", "GET / HTTP/1.1\r\n: y\r\n\r\n", false, false, false,
     "ERR:HPE_INVALID_HEADER_TOKEN", 0, 0},
    {"control in value", "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", false, false, false,
     "ERR:HPE_INVALID_HEADER_TOKEN", 0, 0},
    {"two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     false, false, false, "ERR:HPE_UNEXPECTED_CONTENT_LENGTH", 0, 0},
    {"bad length", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", false, false, false,
     "ERR:HPE_INVALID_CONTENT_LENGTH", 0, 0},
    {"bad version", "GET / HTTP/9.1\r\n\r\n", false, false, false, "ERR:HPE_INVALID_VERSION", 0,
     0},
    {"body too large (length)", "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n0123456789a", false,
     false, false, "ERR:413", 0, 10},
    {"body too large (chunked)",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n",
     false, false, false, "ERR:413", 0, 10},
    {"head too large", "GET /0123456789012345678901234567890123456789 HTTP/1.1\r\n\r\n", false,
     false, false, "ERR:431", 32, 0},
};

static void test_responses(void **state)
{
    (void)state;
    for (size_t i = 0; i < CU_ARRAY_LEN(responses); i++)
        check_case(&responses[i]);
}

static void test_requests(void **state)
{
    (void)state;
    for (size_t i = 0; i < CU_ARRAY_LEN(requests); i++)
        check_case(&requests[i]);
}

static void test_expect_continue(void **state)
{
    (void)state;
    hp_msg m;
    hp_init(&m, false, 65536, 1 << 20);
    m.keep_body = true;
    const char *raw = "PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    size_t used;
    assert_int_equal(hp_feed(&m, raw, strlen(raw), &used), HP_MORE);
    assert_true(m.expect_continue);
    assert_true(m.headers_done);
    assert_int_equal(hp_feed(&m, "ok", 2, &used), HP_DONE);
    assert_int_equal(used, 2);
    assert_int_equal(m.body_len, 2);
    /* clean EOF between messages is not an error */
    assert_int_equal(hp_eof(&m), HP_MORE);
    hp_free(&m);
}

typedef struct ucase {
    const char *in;
    int ok;
    bool tls;
    const char *host;
    int port;
    const char *hostport;
    const char *target;
} ucase;

static void test_urls(void **state)
{
    (void)state;
    static const ucase cases[] = {
        {"http://example.com", 1, false, "example.com", 80, "example.com", "/"},
        {"https://example.com/a/b?c=d#frag", 1, true, "example.com", 443, "example.com", "/a/b?c=d"},
        {"http://127.0.0.1:8080/x", 1, false, "127.0.0.1", 8080, "127.0.0.1:8080", "/x"},
        {"http://[::1]:8080/", 1, false, "::1", 8080, "[::1]:8080", "/"},
        {"https://[::1]/p", 1, true, "::1", 443, "[::1]", "/p"},
        {"HTTP://Example.com:80?q=1", 1, false, "Example.com", 80, "Example.com", "/?q=1"},
        {"https://h:443", 1, true, "h", 443, "h", "/"},
        {"http://h:/", 1, false, "h", 80, "h", "/"},
        {"ftp://x/", 0, false, NULL, 0, NULL, NULL},
        {"http://", 0, false, NULL, 0, NULL, NULL},
        {"http://:80/", 0, false, NULL, 0, NULL, NULL},
        {"http://h:0/", 0, false, NULL, 0, NULL, NULL},
        {"http://h:65536/", 0, false, NULL, 0, NULL, NULL},
        {"http://h:8x/", 0, false, NULL, 0, NULL, NULL},
        {"http://user:pw@h/", 0, false, NULL, 0, NULL, NULL},
        {"http://h/a b", 0, false, NULL, 0, NULL, NULL},
        {"http://[::1/", 0, false, NULL, 0, NULL, NULL},
        {"example.com/x", 0, false, NULL, 0, NULL, NULL},
    };
    for (size_t i = 0; i < CU_ARRAY_LEN(cases); i++) {
        const ucase *c = &cases[i];
        http_url u;
        char err[CU_ERRLEN] = "";
        int rc = http_url_parse(&u, c->in, err);
        if (!c->ok) {
            if (rc != -EINVAL)
                fail_msg("%s: expected an error", c->in);
            assert_true(strlen(err) > 0);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: %s", c->in, err);
        assert_int_equal(u.tls, c->tls);
        assert_string_equal(u.host, c->host);
        assert_int_equal(u.port, c->port);
        assert_string_equal(u.hostport, c->hostport);
        assert_string_equal(u.target, c->target);
        http_url_free(&u);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(http_error_name(HTTP_E_CLOSED), "ECONNRESET");
    assert_string_equal(http_error_name(HTTP_E_PARSE_BASE - HPE_INVALID_CONSTANT),
                        "HPE_INVALID_CONSTANT");
    assert_true(http_error_is_parse(HTTP_E_PARSE_BASE - HPE_INVALID_EOF_STATE));
    assert_true(http_error_is_parse(HTTP_E_PARSE));
    assert_false(http_error_is_parse(UV_ECONNREFUSED));
    assert_string_equal(http_error_name(UV_ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(http_error_name(UV_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(299), "Success");
    http_header h[] = {{"Content-Type", 12, "a", 1}, {"X-Y", 3, "b", 1}};
    assert_ptr_equal(http_header_find(h, 2, "content-type"), &h[0]);
    assert_ptr_equal(http_header_find(h, 2, "x-y"), &h[1]);
    assert_null(http_header_find(h, 2, "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
