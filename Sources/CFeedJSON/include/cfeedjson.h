#ifndef HEADCOUNT_CFEEDJSON_H
#define HEADCOUNT_CFEEDJSON_H
/* Placeholder: the extern "C" API over simdjson is defined here. */
#ifdef __cplusplus
extern "C" {
#endif
int hc_feedjson_version(void);
#ifdef __cplusplus
}
#endif
#endif
