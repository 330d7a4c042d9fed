/// What `sort` orders status changes by (SPEC §5).
public enum StatusChangeSortField: String, Sendable, CaseIterable {
    case date
    case objectLabel
    case status
}

/// How `filter` is matched against an object label (case-sensitive, on UTF-8 bytes).
public enum StatusChangeFilterType: String, Sendable, CaseIterable {
    case contains = "CONTAINS"
    case beginsWith = "BEGINS_WITH"
    case endsWith = "ENDS_WITH"
    /// The label equals the filter.
    case matches = "MATCHES"
}

/// A page cursor: an item id, positioned along the requested order.
public enum StatusChangeCursor: Equatable, Sendable {
    case none
    /// The `limit` items that follow item `id` in the requested order.
    case startAfter(Int64)
    /// The `limit` items just before item `id` in the requested order (returned in that order).
    case endBefore(Int64)
}

/// A list request: `GET /events/{key}/status-changes?sort=…&filter=…&filterType=…&limit=…&start_after_id=…`.
public struct StatusChangeQuery: Equatable, Sendable {
    public static let maximumLimit = 1000

    public var sortField: StatusChangeSortField
    public var ascending: Bool
    /// Nil or empty: no filter.
    public var filter: String?
    public var filterType: StatusChangeFilterType
    /// 1…1000 (values outside are clamped by `StatusChangeLog.list`).
    public var limit: Int
    public var cursor: StatusChangeCursor

    /// The default query: `sort=date:desc`, no filter, `limit=1000`, first page.
    public init(sortField: StatusChangeSortField = .date, ascending: Bool = false, filter: String? = nil,
                filterType: StatusChangeFilterType = .contains, limit: Int = StatusChangeQuery.maximumLimit,
                cursor: StatusChangeCursor = .none) {
        self.sortField = sortField
        self.ascending = ascending
        self.filter = filter
        self.filterType = filterType
        self.limit = limit
        self.cursor = cursor
    }
}

/// A bad list request, or a cursor that names no status change of the event: a 400 for the
/// HTTP layer. `parameter` is the query parameter at fault; `message` says what is wrong in
/// words a person can act on.
public struct StatusChangeQueryError: Error, Equatable, Sendable, CustomStringConvertible {
    public var parameter: String
    public var message: String

    public init(parameter: String, message: String) {
        self.parameter = parameter
        self.message = message
    }

    public var description: String { message }
}

extension StatusChangeQuery {
    /// Parses decoded URL query pairs. Recognised: `sort`, `filter`, `filterType`, `limit`,
    /// `start_after_id`, `end_before_id`; others are ignored. A repeated parameter: the last
    /// one wins. Parameter names are case-sensitive; values of `sort` (field and direction)
    /// and `filterType` are not. An empty `filter` means no filter.
    public static func parse(queryItems: [(String, String)]) -> Result<StatusChangeQuery, StatusChangeQueryError> {
        var query = StatusChangeQuery()
        var startAfter: Int64?
        var endBefore: Int64?
        for (name, value) in queryItems {
            switch name {
            case "sort":
                guard let (field, ascending) = parseSort(value) else {
                    return .failure(StatusChangeQueryError(
                        parameter: "sort",
                        message: "Invalid sort '\(value)': expected date, objectLabel or status, optionally followed by :asc or :desc"))
                }
                query.sortField = field
                query.ascending = ascending
            case "filter":
                query.filter = value.isEmpty ? nil : value
            case "filterType":
                guard let type = parseFilterType(value) else {
                    return .failure(StatusChangeQueryError(
                        parameter: "filterType",
                        message: "Invalid filterType '\(value)': expected CONTAINS, BEGINS_WITH, ENDS_WITH or MATCHES"))
                }
                query.filterType = type
            case "limit":
                guard let limit = Int(value), limit >= 1, limit <= maximumLimit else {
                    return .failure(StatusChangeQueryError(
                        parameter: "limit",
                        message: "Invalid limit '\(value)': expected an integer from 1 to \(maximumLimit)"))
                }
                query.limit = limit
            case "start_after_id", "end_before_id":
                guard let id = Int64(value), id >= 1 else {
                    return .failure(StatusChangeQueryError(
                        parameter: name,
                        message: "Invalid \(name) '\(value)': expected the id of a status change (a positive integer)"))
                }
                if name == "start_after_id" { startAfter = id } else { endBefore = id }
            default:
                continue
            }
        }
        switch (startAfter, endBefore) {
        case (.some, .some):
            return .failure(StatusChangeQueryError(
                parameter: "start_after_id",
                message: "start_after_id and end_before_id are exclusive: give at most one"))
        case (.some(let id), nil):
            query.cursor = .startAfter(id)
        case (nil, .some(let id)):
            query.cursor = .endBefore(id)
        case (nil, nil):
            query.cursor = .none
        }
        return .success(query)
    }

    private static func parseSort(_ value: String) -> (StatusChangeSortField, Bool)? {
        let parts = value.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let field: StatusChangeSortField
        switch parts[0].lowercased() {
        case "date": field = .date
        case "objectlabel": field = .objectLabel
        case "status": field = .status
        default: return nil
        }
        guard parts.count == 2 else { return (field, true) }
        switch parts[1].lowercased() {
        case "asc": return (field, true)
        case "desc": return (field, false)
        default: return nil
        }
    }

    private static func parseFilterType(_ value: String) -> StatusChangeFilterType? {
        switch value.uppercased() {
        case "CONTAINS": return .contains
        case "BEGINS_WITH": return .beginsWith
        case "ENDS_WITH": return .endsWith
        case "MATCHES": return .matches
        default: return nil
        }
    }
}
