#ifndef HEADCOUNT_CHTTPPARSER_SHIM_H
#define HEADCOUNT_CHTTPPARSER_SHIM_H
#include <http_parser.h>

/* HTTP_PARSER_ERRNO is a macro and does not import into Swift. */
static inline enum http_errno hc_http_parser_errno(const http_parser *p) { return HTTP_PARSER_ERRNO(p); }
/* Bit fields do not import cleanly either. */
static inline unsigned int hc_http_parser_method(const http_parser *p) { return p->method; }
static inline unsigned int hc_http_parser_status_code(const http_parser *p) { return p->status_code; }
static inline unsigned short hc_http_parser_major(const http_parser *p) { return p->http_major; }
static inline unsigned short hc_http_parser_minor(const http_parser *p) { return p->http_minor; }
static inline unsigned int hc_http_parser_upgrade(const http_parser *p) { return p->upgrade; }
static inline unsigned int hc_http_parser_flags(const http_parser *p) { return p->flags; }
static inline void hc_http_parser_clear_upgrade(http_parser *p) { p->upgrade = 0; }

#endif
