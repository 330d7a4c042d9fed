#!/usr/bin/env python3
"""Drives a running Headcount with the seat-map service's official Python client (`seatsio`
on PyPI, the version pinned in tools/install-deps.sh) and checks every answer against an
expectations file written by StatusChangesOfficialClientTests.swift.

Usage:
    seatsio_client_check.py --base-url http://127.0.0.1:PORT --secret-key KEY \
        --expected expected.json [--limited-key KEY]

expected.json: {"event": "PY", "eventNumber": 1, "objectLabels": ["A 1/2", ...],
                "changes": [{"id": 1, "objectLabel": "A-1", "status": "booked", "date": "...Z",
                             "dateMillis": 1, "holdToken": null, "extraData": {...} | null,
                             "origin": {"type": "API_CALL", "ip": "..."},
                             "isPresentOnChart": true, "notPresentOnChartReason": null}, ...]}

Prints one line per check and exits 1 if any failed (2 if the client cannot be imported).
"""
import argparse
import json
import sys
import traceback
from datetime import datetime
from importlib import metadata

try:
    import seatsio
    from seatsio.exceptions import SeatsioException
    from seatsio.region import Region
except ImportError as error:
    print(f"FAIL: cannot import the official client seatsio: {error}. "
          "Install it with tools/install-deps.sh --test.")
    sys.exit(2)

failures = []
checks = 0


def check(condition, what, detail=""):
    global checks
    checks += 1
    if condition:
        print(f"ok: {what}")
    else:
        failures.append(what)
        print(f"FAIL: {what}" + (f"\n      {detail}" if detail else ""))


def same(actual, expected, what):
    check(actual == expected, what, f"expected {short(expected)}\n      actual   {short(actual)}")


def short(value):
    text = repr(value)
    return text if len(text) < 600 else text[:600] + f"... ({len(value) if hasattr(value, '__len__') else '?'} items)"


def ordered(changes, field, ascending):
    """SPEC §5: by the key (labels and statuses by UTF-8 bytes, dates by time), equal keys
    newest (highest id) first in either direction."""
    key = {"date": lambda c: c["dateMillis"],
           "objectLabel": lambda c: c["objectLabel"].encode("utf-8"),
           "status": lambda c: c["status"].encode("utf-8")}[field]
    by_id = sorted(changes, key=lambda c: -c["id"])
    if ascending:
        return [c["id"] for c in sorted(by_id, key=key)]
    # Descending by key, ties still highest id first: Python's sort is stable under reverse.
    return [c["id"] for c in sorted(by_id, key=key, reverse=True)]


def contains(changes, text):
    return [c for c in changes if text in c["objectLabel"]]


def ids(items):
    return [item.id for item in items]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--limited-key")
    args = parser.parse_args()

    with open(args.expected, encoding="utf-8") as handle:
        expected = json.load(handle)
    event = expected["event"]
    changes = expected["changes"]
    by_id = {c["id"]: c for c in changes}
    print(f"seatsio {metadata.version('seatsio')} against {args.base_url}, event {event}, {len(changes)} changes")

    # The client as an application builds it, pointed at Headcount instead of a region.
    client = seatsio.Client(Region(args.base_url), secret_key=args.secret_key, max_retries=0)

    # 1. list(): the iterator fetches every page (1000 per page by default).
    listed = list(client.events.status_changes(event).list())
    same(ids(listed), ordered(changes, "date", False), "status_changes(event).list(): all pages, newest first")
    check(len(listed) > 1000, "the default listing spans more than one page", f"{len(listed)} items")

    # Every field as the client decodes it.
    mismatches = []
    for item in listed:
        want = by_id.get(item.id)
        if want is None:
            mismatches.append(f"unknown id {item.id}")
            continue
        got = {
            "id": item.id, "eventId": item.event_id, "status": item.status, "objectLabel": item.object_label,
            "date": item.date, "extraData": item.extra_data, "holdToken": item.hold_token,
            "originType": item.origin.type, "originIp": item.origin.ip,
            "isPresentOnChart": item.is_present_on_chart, "reason": item.not_present_on_chart_reason,
        }
        wanted = {
            "id": want["id"], "eventId": expected["eventNumber"], "status": want["status"],
            "objectLabel": want["objectLabel"], "date": datetime.strptime(want["date"], "%Y-%m-%dT%H:%M:%S.%fZ"),
            "extraData": want["extraData"], "holdToken": want["holdToken"],
            "originType": want["origin"]["type"], "originIp": want["origin"].get("ip"),
            "isPresentOnChart": want["isPresentOnChart"], "reason": want["notPresentOnChartReason"],
        }
        if got != wanted:
            mismatches.append(f"{got} != {wanted}")
    same(mismatches[:3], [], "every item's fields (id, event_id as numbers, date, origin, extra_data, presence)")
    check(all(isinstance(item.id, int) and isinstance(item.event_id, int) for item in listed),
          "id and event_id are numbers")
    check(any(item.is_present_on_chart is False for item in listed), "the data has objects not on the chart")

    # 2. sort_field / sort_direction, as the client spells them ("objectLabel:desc").
    for field in ["date", "objectLabel", "status"]:
        for direction in [None, "asc", "desc", "DESC"]:
            ascending = direction is None or direction.lower() == "asc"
            got = ids(client.events.status_changes(event, sort_field=field, sort_direction=direction).list())
            same(got, ordered(changes, field, ascending), f"status_changes(sort_field={field!r}, sort_direction={direction!r})")

    # 3. filter, alone and with a sort; Lister.list(filter=...) too.
    for text in ["A-1", "1/2", "+", "A", "no such label"]:
        got = ids(client.events.status_changes(event, filter=text).list())
        same(got, ordered(contains(changes, text), "date", False), f"status_changes(filter={text!r})")
    got = ids(client.events.status_changes(event, filter="A-1", sort_field="objectLabel", sort_direction="desc").list())
    same(got, ordered(contains(changes, "A-1"), "objectLabel", False), "filter='A-1' with objectLabel:desc")
    got = ids(client.events.status_changes(event, sort_field="status").list(filter="B"))
    same(got, ordered(contains(changes, "B"), "status", True), "Lister.list(filter='B') with sort status")

    # 4. Pages: first_page, then page_after forward and page_before backward.
    for field, direction, text, size in [("date", "desc", None, 100), ("date", "asc", None, 250),
                                         ("objectLabel", "asc", None, 100), ("objectLabel", "desc", "A-1", 7),
                                         ("status", "desc", None, 333), ("status", "asc", "A", 1000)]:
        ascending = direction == "asc"
        want = ordered(contains(changes, text) if text else changes, field, ascending)
        label = f"sort={field}:{direction} filter={text!r} page_size={size}"

        def lister():
            return client.events.status_changes(event, filter=text, sort_field=field, sort_direction=direction)

        forward_lister = lister()
        page = forward_lister.first_page(page_size=size)
        same(ids(page.items), want[:size], f"{label}: first_page")
        same(page.previous_page_ends_before, None, f"{label}: first page has no previous_page_ends_before")
        pages = [page]
        while page.next_page_starts_after is not None and len(pages) <= len(want) // size + 1:
            page = forward_lister.page_after(page.next_page_starts_after, page_size=size)
            pages.append(page)
        walked = [i for p in pages for i in ids(p.items)]
        same(walked, want, f"{label}: page_after to the end ({len(pages)} pages)")
        cursors_ok = all(p.next_page_starts_after == (p.items[-1].id if n < len(pages) - 1 else None)
                         and p.previous_page_ends_before == (p.items[0].id if n > 0 else None)
                         for n, p in enumerate(pages))
        check(cursors_ok, f"{label}: next/previous cursors exactly where a page exists",
              [(p.previous_page_ends_before, p.next_page_starts_after) for p in pages][:10])

        backward_lister = lister()
        back = [pages[-1]]
        page = pages[-1]
        while page.previous_page_ends_before is not None and len(back) <= len(want) // size + 1:
            page = backward_lister.page_before(page.previous_page_ends_before, page_size=size)
            back.insert(0, page)
        walked = [i for p in back for i in ids(p.items)]
        same(walked, want, f"{label}: page_before back to the start ({len(back)} pages)")
        if len(back) > 1:
            same(back[0].previous_page_ends_before, None, f"{label}: the first page reached backward has no previous")
            same(back[0].next_page_starts_after, back[0].items[-1].id, f"{label}: a page reached backward has a next")

    # 5. One object's changes: the label is percent-encoded by the client ("A 1/2" -> A%201%2F2).
    for object_label in expected["objectLabels"]:
        own = [c for c in changes if c["objectLabel"] == object_label]
        got = list(client.events.status_changes_for_object(event, object_label).list())
        same(ids(got), ordered(own, "date", False), f"status_changes_for_object({object_label!r}).list()")
        check(all(item.object_label == object_label for item in got), f"{object_label!r}: only its own changes")
        if own:
            presence = (own[0]["isPresentOnChart"], own[0]["notPresentOnChartReason"])
            check(all((item.is_present_on_chart, item.not_present_on_chart_reason) == presence for item in got),
                  f"{object_label!r}: presence {presence}")
        if len(own) > 2:
            first = client.events.status_changes_for_object(event, object_label).first_page(page_size=2)
            same(ids(first.items), ordered(own, "date", False)[:2], f"{object_label!r}: first_page(page_size=2)")
            after = client.events.status_changes_for_object(event, object_label).page_after(first.next_page_starts_after, page_size=2)
            same(ids(after.items), ordered(own, "date", False)[2:4], f"{object_label!r}: page_after")
            before = client.events.status_changes_for_object(event, object_label).page_before(after.previous_page_ends_before, page_size=2)
            same(ids(before.items), ordered(own, "date", False)[:2], f"{object_label!r}: page_before")

    # 6. Errors arrive as the client's exception, read from SPEC §6's body.
    def error_of(call):
        try:
            call()
        except SeatsioException as error:
            return error
        except Exception as error:  # anything else is a failure of the wire format
            return f"{type(error).__name__}: {error}"
        return None

    error = error_of(lambda: list(client.events.status_changes("NO-SUCH-EVENT").list()))
    check(isinstance(error, SeatsioException), "unknown event raises SeatsioException", repr(error))
    if isinstance(error, SeatsioException):
        same([e.get("code") for e in error.errors], ["EVENT_NOT_FOUND"], "unknown event: errors[].code")
        same(error.message, "Event not found: NO-SUCH-EVENT.", "unknown event: the client's message")
        check(bool(error.requestId), "unknown event: requestId", repr(error.requestId))
    error = error_of(lambda: list(client.events.status_changes_for_object("NO-SUCH-EVENT", "A-1").list()))
    check(isinstance(error, SeatsioException) and error.errors and error.errors[0].get("code") == "EVENT_NOT_FOUND",
          "unknown event, one object: EVENT_NOT_FOUND", repr(error))

    wrong = seatsio.Client(Region(args.base_url), secret_key="not-a-key", max_retries=0)
    error = error_of(lambda: list(wrong.events.status_changes(event).list()))
    check(isinstance(error, SeatsioException) and error.errors and error.errors[0].get("code") == "UNAUTHORIZED",
          "a wrong secret key: UNAUTHORIZED", repr(error))
    if args.limited_key:
        limited = seatsio.Client(Region(args.base_url), secret_key=args.limited_key, max_retries=0)
        error = error_of(lambda: list(limited.events.status_changes(event).list()))
        check(isinstance(error, SeatsioException) and error.errors and error.errors[0].get("code") == "FORBIDDEN",
              "a key limited to other events: FORBIDDEN", repr(error))

    print(f"seatsio client check: {checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        print("FAIL: the check script crashed")
        sys.exit(1)
