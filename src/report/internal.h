/* report/internal.h: internal to the report module (not its public header).
 * The page's stylesheet and script, NUL-terminated, with no text from any
 * report in them. */
#ifndef CUTOVER_REPORT_INTERNAL_H
#define CUTOVER_REPORT_INTERNAL_H

extern const char rpt_template_css[];
extern const char rpt_template_js[];

#endif
