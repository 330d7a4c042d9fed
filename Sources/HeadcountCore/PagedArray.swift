/// An append-only array kept in fixed-size pages. Copies share pages copy-on-write, so after
/// a snapshot takes a copy, the owner's next change to a page copies that page alone (a few
/// MB at most) instead of the whole array — no long stall for the thread that keeps
/// applying events. Growth never moves existing pages either.
struct PagedArray<Element> {
    static var pageShift: Int { 16 }
    static var pageSize: Int { 1 << pageShift }

    private var pages: [[Element]] = []
    private(set) var count = 0

    init() {}

    @inline(__always)
    subscript(index: Int) -> Element {
        get { pages[index >> Self.pageShift][index & (Self.pageSize - 1)] }
        set { pages[index >> Self.pageShift][index & (Self.pageSize - 1)] = newValue }
    }

    mutating func append(_ element: Element) {
        if count & (Self.pageSize - 1) == 0 {
            pages.append([])  // grows by doubling up to a page: small ledgers stay small
        }
        pages[pages.count - 1].append(element)
        count += 1
    }

    /// Bytes reserved by the pages.
    var allocatedBytes: Int { pages.reduce(0) { $0 + $1.capacity } * MemoryLayout<Element>.stride }
}
