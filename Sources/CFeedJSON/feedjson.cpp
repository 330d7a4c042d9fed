// The simdjson side of the feed decoder: parse, walk each event object once, fill a C struct.
// See include/cfeedjson.h for the contract.
#include "cfeedjson.h"

#include <simdjson.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string_view>

using namespace simdjson;

struct hc_feed_decoder {
    dom::parser parser;
    // The body, copied, followed by SIMDJSON_PADDING readable bytes.
    uint8_t *buffer = nullptr;
    size_t capacity = 0; // bytes usable for the body (allocation is capacity + padding)
    size_t length = 0;
    hc_feed_format format = HC_FEED_FORMAT_JSON;
    bool failed = true;

    // JSON format
    bool single_pending = false; // a top-level object not yet returned
    dom::object single;
    dom::array::iterator cursor, end;

    // NDJSON format
    size_t position = 0;
    // The whole NDJSON body parsed as a stream of documents (`parse_many`: one stage-1 pass
    // over the body instead of one per line), used while its documents line up one to one
    // with the body's non-blank lines; from the first line where they do not (a malformed
    // line, two values on one line, a scalar), each line is parsed alone as before, so every
    // outcome is the per-line one. `advance_pending`: the current document was handed out
    // and the stream moves on at the next call (moving on overwrites the document).
    std::optional<dom::document_stream> stream;
    std::optional<dom::document_stream::iterator> stream_at;
    bool streaming = false;
    bool advance_pending = false;
    bool stream_ndjson = true;

    void stop_streaming() {
        streaming = false;
        advance_pending = false;
        stream_at.reset();
        stream.reset();
    }

    // Minified extraData of the current event.
    internal::string_builder<> minified;

    ~hc_feed_decoder() { std::free(buffer); }

    bool reserve(size_t n) {
        if (n <= capacity && buffer) return true;
        size_t next = capacity < 4096 ? 4096 : capacity;
        while (next < n) next *= 2;
        uint8_t *fresh = static_cast<uint8_t *>(std::malloc(next + SIMDJSON_PADDING));
        if (!fresh) return false;
        std::free(buffer);
        buffer = fresh;
        capacity = next;
        return true;
    }
};

namespace {

inline void clear_event(hc_feed_event *event) { std::memset(event, 0, sizeof(*event)); }

inline void set_scalar(hc_value &out, dom::element value) noexcept {
    switch (value.type()) {
    case dom::element_type::STRING: {
        std::string_view s = value.get_string().value_unsafe();
        out.type = HC_JSON_STRING;
        out.ptr = s.data();
        out.len = s.size();
        out.integer = 0;
        break;
    }
    case dom::element_type::INT64:
        out.type = HC_JSON_INT64;
        out.ptr = nullptr;
        out.len = 0;
        out.integer = value.get_int64().value_unsafe();
        break;
    case dom::element_type::UINT64:
        out = hc_value{nullptr, 0, 0, HC_JSON_UINT64};
        break;
    case dom::element_type::DOUBLE:
        out = hc_value{nullptr, 0, 0, HC_JSON_DOUBLE};
        break;
    case dom::element_type::BOOL:
        out = hc_value{nullptr, 0, value.get_bool().value_unsafe() ? 1 : 0, HC_JSON_BOOL};
        break;
    case dom::element_type::NULL_VALUE:
        out = hc_value{nullptr, 0, 0, HC_JSON_NULL};
        break;
    case dom::element_type::OBJECT:
        out = hc_value{nullptr, 0, 0, HC_JSON_OBJECT};
        break;
    case dom::element_type::ARRAY:
        out = hc_value{nullptr, 0, 0, HC_JSON_ARRAY};
        break;
    }
}

template <size_t N> inline bool eq(std::string_view key, const char (&literal)[N]) {
    return std::memcmp(key.data(), literal, N - 1) == 0;
}

// The slot for a top-level key, or nullptr for a key the feed does not use.
inline hc_value *slot_for(hc_feed_event *e, std::string_view k) noexcept {
    switch (k.size()) {
    case 2: return eq(k, "id") ? &e->id : nullptr;
    case 4:
        if (eq(k, "type")) return &e->type;
        if (eq(k, "mode")) return &e->mode;
        return nullptr;
    case 6:
        if (eq(k, "status")) return &e->status;
        if (eq(k, "reason")) return &e->reason;
        if (eq(k, "origin")) return &e->origin;
        return nullptr;
    case 7:
        if (eq(k, "eventId")) return &e->event_id;
        if (eq(k, "pending")) return &e->pending;
        if (eq(k, "orderId")) return &e->order_id;
        return nullptr;
    case 8:
        if (eq(k, "ticketId")) return &e->ticket_id;
        if (eq(k, "deviceId")) return &e->device_id;
        if (eq(k, "platform")) return &e->platform;
        if (eq(k, "quantity")) return &e->quantity;
        return nullptr;
    case 9:
        if (eq(k, "holdToken")) return &e->hold_token;
        if (eq(k, "extraData")) return &e->extra_data;
        return nullptr;
    case 10:
        if (eq(k, "occurredAt")) return &e->occurred_at;
        if (eq(k, "passStatus")) return &e->pass_status;
        return nullptr;
    case 11: return eq(k, "objectLabel") ? &e->object_label : nullptr;
    case 14: return eq(k, "displayedLabel") ? &e->displayed_label : nullptr;
    default: return nullptr;
    }
}

void walk_event(hc_feed_decoder *d, dom::object object, hc_feed_event *e) noexcept {
    e->outcome = HC_EVENT_OBJECT;
    for (dom::key_value_pair field : object) {
        hc_value *slot = slot_for(e, field.key);
        if (!slot) continue;
        set_scalar(*slot, field.value);
        if (slot == &e->origin) {
            // Last `origin` wins, including its members.
            e->origin_type = hc_value{nullptr, 0, 0, HC_JSON_ABSENT};
            e->origin_ip = hc_value{nullptr, 0, 0, HC_JSON_ABSENT};
            if (slot->type != HC_JSON_OBJECT) continue;
            // A local: a range-for over value_unsafe() of a temporary result would dangle.
            dom::object origin = field.value.get_object().value_unsafe();
            for (dom::key_value_pair inner : origin) {
                std::string_view k = inner.key;
                if (k.size() == 4 && eq(k, "type")) set_scalar(e->origin_type, inner.value);
                else if (k.size() == 2 && eq(k, "ip")) set_scalar(e->origin_ip, inner.value);
            }
        } else if (slot == &e->extra_data && slot->type == HC_JSON_OBJECT) {
            d->minified.clear();
            d->minified.append(field.value.get_object().value_unsafe());
            std::string_view text = d->minified.str();
            slot->ptr = text.data();
            slot->len = text.size();
        }
    }
}

inline void fill_from_element(hc_feed_decoder *d, dom::element element, hc_feed_event *e) noexcept {
    if (element.type() == dom::element_type::OBJECT) {
        walk_event(d, element.get_object().value_unsafe(), e);
    } else {
        e->outcome = HC_EVENT_NOT_OBJECT;
    }
}

inline bool is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\r'; }

// NDJSON bodies of at least this many bytes are streamed (see hc_feed_decoder::stream).
constexpr size_t stream_min_bytes = 1024;

// The streamed document for the non-blank line [first, stop) of the body, if the stream has
// one that is exactly that line's value (it starts where the line's first non-blank byte is
// and only blanks follow it on the line); else streaming stops for the rest of the body and
// false sends the line to the per-line parse.
bool next_streamed(hc_feed_decoder *d, const uint8_t *base, size_t first, size_t stop, hc_feed_event *e) noexcept {
    auto &at = *d->stream_at;
    if (d->advance_pending) {
        d->advance_pending = false;
        ++at;
    }
    if (!(at != d->stream->end())) {
        d->stop_streaming();
        return false;
    }
    dom::element element;
    if ((*at).get(element) != SUCCESS || at.current_index() != first) {
        d->stop_streaming();
        return false;
    }
    // Objects and arrays only: the stream's view of a scalar reaches to the next document.
    const uint8_t opening = base[first];
    if (opening != '{' && opening != '[') {
        d->stop_streaming();
        return false;
    }
    size_t end = first + at.source().size();
    if (end > stop) {
        d->stop_streaming();
        return false;
    }
    for (size_t i = end; i < stop; i++) {
        if (!is_blank(base[i])) {
            d->stop_streaming();
            return false;
        }
    }
    fill_from_element(d, element, e);
    d->advance_pending = true;
    return true;
}

} // namespace

extern "C" {

hc_feed_decoder *hc_feed_decoder_new(void) { return new (std::nothrow) hc_feed_decoder(); }

void hc_feed_decoder_free(hc_feed_decoder *decoder) { delete decoder; }

void hc_feed_set_streaming(hc_feed_decoder *d, int on) { d->stream_ndjson = on != 0; }

hc_body_status hc_feed_begin(hc_feed_decoder *d, const void *body, size_t length, hc_feed_format format,
                             hc_feed_body_info *info) {
    info->status = HC_BODY_OK;
    info->error_code = 0;
    info->event_count = -1;
    d->failed = true;
    d->single_pending = false;
    d->cursor = d->end = dom::array::iterator();
    d->format = format;
    d->position = 0;
    d->length = 0;
    d->stop_streaming();

    const uint8_t *bytes = static_cast<const uint8_t *>(body);
    if (length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) {
        bytes += 3;
        length -= 3;
    }
    if (!d->reserve(length)) {
        info->status = HC_BODY_INVALID_JSON;
        info->error_code = MEMALLOC;
        return info->status;
    }
    if (length) std::memcpy(d->buffer, bytes, length);
    std::memset(d->buffer + length, 0, SIMDJSON_PADDING);
    d->length = length;

    if (format == HC_FEED_FORMAT_NDJSON) {
        d->failed = false;
        // One batch for the whole body. A body that cannot be streamed is parsed line by line.
        // Not for a small body (a one-event request): setting a stream up costs more than
        // the few lines it would save (measured: +1% of a one-event request's instructions).
        if (!d->stream_ndjson || length < stream_min_bytes) return info->status;
        auto many = d->parser.parse_many(d->buffer, length, length > dom::MINIMAL_BATCH_SIZE ? length : dom::MINIMAL_BATCH_SIZE);
        if (!many.error()) {
            d->stream.emplace(std::move(many).value_unsafe());
            d->stream_at.emplace(d->stream->begin());
            d->streaming = true;
        }
        return info->status;
    }

    dom::element root;
    error_code error = d->parser.parse(d->buffer, length, false).get(root);
    if (error) {
        info->status = HC_BODY_INVALID_JSON;
        info->error_code = error;
        return info->status;
    }
    switch (root.type()) {
    case dom::element_type::OBJECT:
        d->single = root.get_object().value_unsafe();
        d->single_pending = true;
        info->event_count = 1;
        break;
    case dom::element_type::ARRAY: {
        dom::array array = root.get_array().value_unsafe();
        d->cursor = array.begin();
        d->end = array.end();
        size_t n = array.size();
        info->event_count = n >= 0xFFFFFF ? -1 : int64_t(n);
        break;
    }
    default:
        info->status = HC_BODY_NOT_CONTAINER;
        return info->status;
    }
    d->failed = false;
    return info->status;
}

int hc_feed_next(hc_feed_decoder *d, hc_feed_event *e) {
    if (d->failed) return 0;
    if (d->format == HC_FEED_FORMAT_JSON) {
        if (d->single_pending) {
            d->single_pending = false;
            clear_event(e);
            walk_event(d, d->single, e);
            return 1;
        }
        if (d->cursor != d->end) {
            dom::element element = *d->cursor;
            ++d->cursor;
            clear_event(e);
            fill_from_element(d, element, e);
            return 1;
        }
        return 0;
    }

    // NDJSON: the next line that is not blank.
    const uint8_t *base = d->buffer;
    while (d->position < d->length) {
        size_t start = d->position;
        const void *newline = std::memchr(base + start, '\n', d->length - start);
        size_t stop = newline ? size_t(static_cast<const uint8_t *>(newline) - base) : d->length;
        d->position = newline ? stop + 1 : d->length;
        size_t first = start;
        while (first < stop && is_blank(base[first])) first++;
        if (first == stop) continue;
        clear_event(e);
        if (d->streaming && next_streamed(d, base, first, stop, e)) return 1;
        // The line is followed by the rest of the body and the padding, so simdjson may
        // read past its end safely.
        dom::element element;
        error_code error = d->parser.parse(base + first, stop - first, false).get(element);
        if (error) {
            e->outcome = HC_EVENT_INVALID_JSON;
            e->error_code = error;
        } else {
            fill_from_element(d, element, e);
        }
        return 1;
    }
    return 0;
}

void hc_feed_end(hc_feed_decoder *d, size_t retain_bytes) {
    d->stop_streaming();
    d->failed = true;
    d->single_pending = false;
    d->cursor = d->end = dom::array::iterator();
    d->length = 0;
    d->position = 0;
    // Only a body larger than retain_bytes can have grown any of these beyond it.
    if (d->capacity > retain_bytes || d->parser.capacity() > retain_bytes) {
        std::free(d->buffer);
        d->buffer = nullptr;
        d->capacity = 0;
        d->parser = dom::parser();
        d->minified = internal::string_builder<>();
    }
    d->minified.clear();
}

const char *hc_feed_error_message(int32_t code) {
    switch (error_code(code)) {
    case SUCCESS: return "no error";
    case EMPTY: return "empty: no JSON value";
    case UTF8_ERROR: return "invalid UTF-8";
    case TAPE_ERROR: return "malformed JSON (missing or superfluous commas, braces or keys)";
    case DEPTH_ERROR: return "JSON nested too deeply";
    case STRING_ERROR: return "malformed string";
    case UNCLOSED_STRING: return "unclosed string";
    case UNESCAPED_CHARS: return "unescaped control character in a string";
    case NUMBER_ERROR: return "malformed or out-of-range number";
    case T_ATOM_ERROR: return "malformed true";
    case F_ATOM_ERROR: return "malformed false";
    case N_ATOM_ERROR: return "malformed null";
    case CAPACITY: return "document too large";
    case MEMALLOC: return "out of memory";
    default: return error_message(error_code(code));
    }
}

} // extern "C"
