/* http/url.c: absolute http(s) URLs, header lookup, status texts, error names.
 *
 * URLs are split, not normalised: the target goes on the wire as written
 * (minus any #fragment); only what a client needs is checked (scheme, a
 * host, a port in range, no whitespace or control characters).
 * Credentials in URLs (user:pass@host) are rejected rather than silently
 * dropped, since a load test that meant to authenticate must not quietly
 * run unauthenticated.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "http/parse.h"

int http_url_parse(http_url *u, const char *s, char err[CU_ERRLEN])
{
    memset(u, 0, sizeof *u);
    if (!s) {
        snprintf(err, CU_ERRLEN, "missing URL");
        return -EINVAL;
    }
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            snprintf(err, CU_ERRLEN, "invalid URL '%s': whitespace or control character", s);
            return -EINVAL;
        }
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        p = s + 8;
    } else {
        snprintf(err, CU_ERRLEN, "invalid URL '%s': expected http:// or https://", s);
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    const char *at = memchr(p, '@', alen);
    if (at) {
        snprintf(err, CU_ERRLEN, "invalid URL '%s': credentials in URLs are not supported", s);
        return -EINVAL;
    }
    const char *host = p, *hend, *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        if (!close || close == p + 1) {
            snprintf(err, CU_ERRLEN, "invalid URL '%s': bad IPv6 address", s);
            return -EINVAL;
        }
        host = p + 1;
        hend = close;
        if (close + 1 < rest) {
            if (close[1] != ':') {
                snprintf(err, CU_ERRLEN, "invalid URL '%s': junk after IPv6 address", s);
                return -EINVAL;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        hend = colon ? colon : rest;
        if (colon)
            port = colon + 1;
    }
    if (hend == host) {
        snprintf(err, CU_ERRLEN, "invalid URL '%s': missing host", s);
        return -EINVAL;
    }
    int portnum = u->tls ? 443 : 80;
    bool explicit_port = false;
    if (port && port < rest) {
        long v = 0;
        for (const char *c = port; c < rest; c++) {
            if (*c < '0' || *c > '9' || v > 65535) {
                snprintf(err, CU_ERRLEN, "invalid URL '%s': bad port", s);
                return -EINVAL;
            }
            v = v * 10 + (*c - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(err, CU_ERRLEN, "invalid URL '%s': port out of range", s);
            return -EINVAL;
        }
        portnum = (int)v;
        explicit_port = portnum != (u->tls ? 443 : 80);
    }
    u->host = cu_strndup(host, (size_t)(hend - host));
    u->port = portnum;
    bool v6 = *p == '[';
    if (explicit_port)
        u->hostport = cu_asprintf(v6 ? "[%s]:%d" : "%s:%d", u->host, portnum);
    else
        u->hostport = cu_asprintf(v6 ? "[%s]" : "%s", u->host);
    size_t tlen = strcspn(rest, "#");
    if (tlen == 0 || rest[0] != '/')
        u->target = cu_asprintf("/%.*s", (int)tlen, rest);
    else
        u->target = cu_strndup(rest, tlen);
    return 0;
}

void http_url_free(http_url *u)
{
    free(u->host);
    free(u->hostport);
    free(u->target);
    memset(u, 0, sizeof *u);
}

const http_header *http_header_find(const http_header *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == len && strncasecmp(h[i].name, name, len) == 0)
            return &h[i];
    return NULL;
}

bool http_error_is_parse(int err)
{
    return err == HTTP_E_PARSE || (err <= HTTP_E_PARSE_BASE && err > HTTP_E_PARSE_BASE - 1100);
}

const char *http_error_name(int err)
{
    if (err == HTTP_E_PARSE)
        return "HPE_INVALID_RESPONSE";
    if (err == HTTP_E_CLOSED)
        return "ECONNRESET";
    if (http_error_is_parse(err))
        return hp_errno_name(HTTP_E_PARSE_BASE - err);
    return net_error_name(err);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a Teapot";
    case 422: return "Unprocessable Entity";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:
        break;
    }
    if (status >= 100 && status < 200) return "Informational";
    if (status >= 200 && status < 300) return "Success";
    if (status >= 300 && status < 400) return "Redirection";
    if (status >= 400 && status < 500) return "Client Error";
    return "Server Error";
}
