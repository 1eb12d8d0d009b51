/* report/escape.c: the two escapes the page depends on for safety.
 *
 * Metric names come from users' scripts (scenario names, URLs, error
 * messages), so every one of them passes through one of these before it
 * reaches the page: rpt_html_escape for markup, rpt_script_json for the data
 * blob inside <script>. The JSON escape works on text jansson produced, where
 * '<', '>' and '&' can only occur inside strings, so replacing each with its
 * \u escape keeps the JSON equal in value while making "</script" and "<!--"
 * impossible.
 */
#include <string.h>

#include "report/report.h"

void rpt_html_escape(cu_buf *out, const char *s)
{
    cu_buf_reserve(out, strlen(s));
    for (; *s; s++) {
        switch (*s) {
        case '&': cu_buf_appends(out, "&amp;"); break;
        case '<': cu_buf_appends(out, "&lt;"); break;
        case '>': cu_buf_appends(out, "&gt;"); break;
        case '"': cu_buf_appends(out, "&quot;"); break;
        case '\'': cu_buf_appends(out, "&#39;"); break;
        default: cu_buf_appendc(out, *s);
        }
    }
}

void rpt_script_json(cu_buf *out, const char *json)
{
    cu_buf_reserve(out, strlen(json));
    for (const unsigned char *p = (const unsigned char *)json; *p; p++) {
        if (*p == '<')
            cu_buf_appends(out, "\\u003c");
        else if (*p == '>')
            cu_buf_appends(out, "\\u003e");
        else if (*p == '&')
            cu_buf_appends(out, "\\u0026");
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            /* U+2028/U+2029: line terminators to older JavaScript parsers */
            cu_buf_appends(out, p[2] == 0xa8 ? "\\u2028" : "\\u2029");
            p += 2;
        } else
            cu_buf_appendc(out, (char)*p);
    }
}
