/// One status change as listed (SPEC §5 item).
public struct StatusChangeItem: Equatable, Sendable {
    /// Headcount's id: 1, 2, … in acceptance order, across all events.
    public var id: Int64
    /// The event's number (`eventId` on the wire): 1, 2, … in order of first appearance.
    public var eventNumber: Int64
    public var status: String
    public var quantity: Int64
    public var objectLabel: String
    public var displayedLabel: String
    /// `occurredAt`, milliseconds since the epoch.
    public var date: Int64
    public var orderId: String?
    /// Minified JSON object text, written as is.
    public var extraDataJSON: String?
    public var holdToken: String?
    public var originType: SeatOriginType
    /// Only with `API_CALL`.
    public var originIP: String?
    public var isPresentOnChart: Bool
    /// Set exactly when `isPresentOnChart` is false.
    public var notPresentOnChartReason: ChartRemovalReason?

    public init(id: Int64, eventNumber: Int64, status: String, quantity: Int64, objectLabel: String,
                displayedLabel: String, date: Int64, orderId: String?, extraDataJSON: String?,
                holdToken: String?, originType: SeatOriginType, originIP: String?,
                isPresentOnChart: Bool, notPresentOnChartReason: ChartRemovalReason?) {
        self.id = id
        self.eventNumber = eventNumber
        self.status = status
        self.quantity = quantity
        self.objectLabel = objectLabel
        self.displayedLabel = displayedLabel
        self.date = date
        self.orderId = orderId
        self.extraDataJSON = extraDataJSON
        self.holdToken = holdToken
        self.originType = originType
        self.originIP = originIP
        self.isPresentOnChart = isPresentOnChart
        self.notPresentOnChartReason = notPresentOnChartReason
    }

    /// `{"id":169,"eventId":12,"status":"booked","quantity":1,"objectLabel":"A-1",
    /// "displayedLabel":"A-1","date":"2017-05-05T10:58:44.715Z","orderId":"anOrder",
    /// "extraData":{…},"holdToken":null,"origin":{"type":"API_CALL","ip":"1.2.3.4"},
    /// "isPresentOnChart":true}`, plus `"notPresentOnChartReason"` when not present.
    public func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id"); writer.int(id)
        writer.key("eventId"); writer.int(eventNumber)
        writer.key("status"); writer.string(status)
        writer.key("quantity"); writer.int(quantity)
        writer.key("objectLabel"); writer.string(objectLabel)
        writer.key("displayedLabel"); writer.string(displayedLabel)
        writer.key("date"); SCL.writeTimestamp(date, into: &writer)
        writer.key("orderId")
        if let orderId { writer.string(orderId) } else { writer.null() }
        writer.key("extraData")
        if let extraDataJSON { writer.raw(extraDataJSON) } else { writer.null() }
        writer.key("holdToken")
        if let holdToken { writer.string(holdToken) } else { writer.null() }
        writer.key("origin")
        writer.beginObject()
        writer.key("type"); writer.string(originType.name)
        if originType == .apiCall, let originIP {
            writer.key("ip"); writer.string(originIP)
        }
        writer.endObject()
        writer.key("isPresentOnChart"); writer.bool(isPresentOnChart)
        if !isPresentOnChart {
            writer.key("notPresentOnChartReason")
            writer.string((notPresentOnChartReason ?? .renamedOrDeleted).name)
        }
        writer.endObject()
    }
}

/// One page of a status-change listing.
public struct StatusChangePage: Equatable, Sendable {
    public var items: [StatusChangeItem]
    /// The id of the last item, when more items follow it in the requested order.
    public var nextPageStartsAfter: Int64?
    /// The id of the first item, when items precede it in the requested order.
    public var previousPageEndsBefore: Int64?

    public init(items: [StatusChangeItem], nextPageStartsAfter: Int64?, previousPageEndsBefore: Int64?) {
        self.items = items
        self.nextPageStartsAfter = nextPageStartsAfter
        self.previousPageEndsBefore = previousPageEndsBefore
    }

    /// `{"items":[…],"next_page_starts_after":"170","previous_page_ends_before":"160"}`:
    /// cursors are strings, each left out when there is no page that way.
    public func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("items")
        writer.beginArray()
        for item in items { item.writeJSON(into: &writer) }
        writer.endArray()
        if let next = nextPageStartsAfter {
            writer.key("next_page_starts_after"); writer.string(String(next))
        }
        if let previous = previousPageEndsBefore {
            writer.key("previous_page_ends_before"); writer.string(String(previous))
        }
        writer.endObject()
    }
}

extension SCL {
    /// Writes `"2017-05-05T10:58:44.715Z"` (UTC, millisecond precision; see
    /// `Timestamp.format(milliseconds:)`) as a JSON string: plain ASCII, nothing to escape.
    static func writeTimestamp(_ milliseconds: Int64, into writer: inout JSONWriter) {
        writer.valuePrefix()
        writer.bytes.append(UInt8(ascii: "\""))
        Timestamp.write(milliseconds: milliseconds, into: &writer.bytes)
        writer.bytes.append(UInt8(ascii: "\""))
        writer.hasElement = true
    }
}
