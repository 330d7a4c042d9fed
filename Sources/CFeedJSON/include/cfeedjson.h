#ifndef HEADCOUNT_CFEEDJSON_H
#define HEADCOUNT_CFEEDJSON_H
/*
 * CFeedJSON: a small extern "C" bridge over simdjson (DOM API) for the feed decoder.
 *
 * The C side only parses and walks JSON: for each feed event (one object) it fills one
 * `hc_feed_event` with a view of every field the feed knows about (presence, JSON type,
 * string bytes, integer/bool). It does not validate feed rules; HeadcountFeed does.
 *
 * Usage (one decoder per thread; not thread-safe):
 *
 *   hc_feed_decoder *d = hc_feed_decoder_new();
 *   hc_feed_body_info info;
 *   if (hc_feed_begin(d, body, len, HC_FEED_FORMAT_JSON, &info) == HC_BODY_OK) {
 *       hc_feed_event ev;
 *       while (hc_feed_next(d, &ev)) { ...validate ev... }
 *   }
 *   hc_feed_end(d, 1 << 20);
 *   hc_feed_decoder_free(d);
 *
 * Lifetimes: `hc_feed_begin` copies the body into a padded buffer the decoder owns, so the
 * caller's buffer may go away right after it returns. Every pointer inside an
 * `hc_feed_event` (strings, minified extraData) stays valid until the next call to
 * `hc_feed_next`, `hc_feed_begin` or `hc_feed_decoder_free` on the same decoder.
 * Strings are unescaped UTF-8, validated by simdjson, not NUL-terminated, and may contain
 * NUL bytes.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The JSON type of one field of an event. */
typedef enum __attribute__((enum_extensibility(closed))) hc_json_type {
    HC_JSON_ABSENT = 0, /* the key is not in the object */
    HC_JSON_NULL = 1,
    HC_JSON_STRING = 2, /* ptr/len: the unescaped bytes */
    HC_JSON_INT64 = 3,  /* integer: the value */
    HC_JSON_UINT64 = 4, /* an integer above INT64_MAX (value not kept) */
    HC_JSON_DOUBLE = 5, /* a number with a fraction or exponent (value not kept) */
    HC_JSON_BOOL = 6,   /* integer: 0 or 1 */
    HC_JSON_OBJECT = 7, /* for `extraData` only: ptr/len is the minified JSON text */
    HC_JSON_ARRAY = 8
} hc_json_type;

/* One field's value. */
typedef struct hc_value {
    const char *ptr;
    size_t len;
    int64_t integer;
    hc_json_type type;
} hc_value;

/* What became of one event slot. */
typedef enum __attribute__((enum_extensibility(closed))) hc_event_outcome {
    HC_EVENT_OBJECT = 0,       /* an object: the fields below are filled */
    HC_EVENT_INVALID_JSON = 1, /* NDJSON only: the line does not parse; see `error_code` */
    HC_EVENT_NOT_OBJECT = 2    /* valid JSON that is not an object */
} hc_event_outcome;

/* One feed event as found in the JSON; every field not present is HC_JSON_ABSENT.
   For duplicate keys the last one wins. */
typedef struct hc_feed_event {
    hc_event_outcome outcome;
    int32_t error_code; /* simdjson error code when outcome == HC_EVENT_INVALID_JSON */
    /* envelope */
    hc_value id, type, event_id, ticket_id, occurred_at;
    /* ticket and pass kinds */
    hc_value pending, device_id, mode, platform, pass_status, reason;
    /* seat and chart kinds */
    hc_value object_label, status, quantity, order_id, hold_token, extra_data, displayed_label;
    /* `origin` (its JSON type) and, when it is an object, its `type` and `ip` */
    hc_value origin, origin_type, origin_ip;
} hc_feed_event;

typedef enum __attribute__((enum_extensibility(closed))) hc_feed_format {
    HC_FEED_FORMAT_JSON = 0,  /* one JSON value: an object, or an array of events */
    HC_FEED_FORMAT_NDJSON = 1 /* one event per line; blank lines skipped */
} hc_feed_format;

typedef enum __attribute__((enum_extensibility(closed))) hc_body_status {
    HC_BODY_OK = 0,
    HC_BODY_INVALID_JSON = 1, /* JSON format: the body does not parse */
    HC_BODY_NOT_CONTAINER = 2 /* JSON format: the top-level value is not an object/array */
} hc_body_status;

typedef struct hc_feed_body_info {
    hc_body_status status;
    int32_t error_code;  /* simdjson error code when status == HC_BODY_INVALID_JSON */
    int64_t event_count; /* JSON: the number of events; -1 when unknown (NDJSON, or an
                            array of 2^24 - 1 elements or more) */
} hc_feed_body_info;

typedef struct hc_feed_decoder hc_feed_decoder;

/* A new decoder (owns a reusable simdjson parser and buffers); NULL when out of memory. */
hc_feed_decoder *hc_feed_decoder_new(void);
void hc_feed_decoder_free(hc_feed_decoder *decoder);

/* Whether an NDJSON body is first parsed as one stream of documents (one stage-1 pass over
   the whole body, simdjson's parse_many), line by line from the first line whose document
   is not exactly that line's value; or line by line from the start (0). Same outcomes
   either way; on by default (1). */
void hc_feed_set_streaming(hc_feed_decoder *decoder, int on);

/* Starts decoding `body` (copied; a leading UTF-8 byte order mark is skipped). For
   HC_FEED_FORMAT_JSON the whole body is parsed here. Returns info->status. After a
   status other than HC_BODY_OK, hc_feed_next yields nothing. */
hc_body_status hc_feed_begin(hc_feed_decoder *decoder, const void *body, size_t length,
                             hc_feed_format format, hc_feed_body_info *info);

/* Fills *event with the next event (in request order) and returns 1; returns 0 when there
   are no more events. NDJSON lines that are empty or hold only spaces, tabs and CRs are
   skipped and yield no event. */
int hc_feed_next(hc_feed_decoder *decoder, hc_feed_event *event);

/* Ends the current body: every view into it becomes invalid, and buffers grown for a body
   larger than `retain_bytes` are released (a parser sized for a 16 MiB body holds about
   ten times that). Optional; hc_feed_begin may follow either way. */
void hc_feed_end(hc_feed_decoder *decoder, size_t retain_bytes);

/* A short English description of a simdjson error code (static storage). */
const char *hc_feed_error_message(int32_t error_code);

#ifdef __cplusplus
}
#endif
#endif
