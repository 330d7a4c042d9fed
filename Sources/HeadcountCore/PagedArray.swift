/// An append-only array kept in fixed-size pages, whose pages can be spilled to a
/// `SpillStore` and are read back on first touch.
///
/// - Copies share pages copy-on-write, so after a snapshot takes a copy, the owner's next
///   change to a page copies that page alone (128 KiB with the default 4 Ki-entry pages) instead of the whole array.
/// - Spilling: `spill(page:)` hands a full page's bytes to the store and frees it; the next
///   access to it (the getter is `mutating`) reads it back and keeps it. A copy taken while a
///   page was spilled keeps the token and reads the page through `element(at:)` — the store's
///   bytes never change, so the copy sees the page as it was.
struct PagedArray<Element> {
    /// log2 of the elements per page.
    let pageShift: Int
    var pageSize: Int { 1 << pageShift }

    /// Resident pages; a spilled page is empty here (a resident page is never empty).
    private var pages: [[Element]] = []
    /// Where each spilled page is.
    private var spilled: [UInt64?] = []
    private(set) var count = 0
    private(set) var residentPageCount = 0
    var spillStore: SpillStore?

    init(pageShift: Int = 16) {
        precondition((1...24).contains(pageShift), "pages of 2 to 16 Mi elements")
        self.pageShift = pageShift
    }

    @inline(__always)
    subscript(index: Int) -> Element {
        mutating get {
            let page = index >> pageShift
            if pages[page].isEmpty { faultIn(page) }
            return pages[page][index & (pageSize - 1)]
        }
        set {
            let page = index >> pageShift
            if pages[page].isEmpty { faultIn(page) }
            pages[page][index & (pageSize - 1)] = newValue
        }
    }

    /// The element's address, for a prefetch instruction (never dereferenced); nil for a
    /// spilled page or an index past the end. Never faults a page in.
    @inline(__always)
    func prefetchAddress(_ index: Int) -> UnsafeRawPointer? {
        let page = index >> pageShift
        guard index >= 0, page < pages.count else { return nil }
        return pages.withUnsafeBufferPointer { pages in
            pages[page].withUnsafeBufferPointer { elements in
                let offset = index & (pageSize - 1)
                guard offset < elements.count, let base = elements.baseAddress else { return nil }
                return UnsafeRawPointer(base + offset)
            }
        }
    }

    /// The element, reading a spilled page from the store without keeping it (for copies
    /// encoded on another thread). O(page) when spilled.
    func element(at index: Int) -> Element {
        let page = index >> pageShift
        if pages[page].isEmpty { return loadPage(page)[index & (pageSize - 1)] }
        return pages[page][index & (pageSize - 1)]
    }

    /// A whole page, resident or read from the store (for encoding many elements).
    func pageContents(_ page: Int) -> [Element] { pages[page].isEmpty ? loadPage(page) : pages[page] }

    var pageCount: Int { pages.count }

    func isResident(_ page: Int) -> Bool { !pages[page].isEmpty }

    mutating func append(_ element: Element) {
        if count & (pageSize - 1) == 0 {
            pages.append([])  // grows by doubling up to a page: small ledgers stay small
            spilled.append(nil)
            residentPageCount += 1
        }
        let last = pages.count - 1
        if pages[last].isEmpty && spilled[last] != nil { faultIn(last) }
        pages[last].append(element)
        count += 1
    }

    /// Appends the elements page by page (one copy per page, no per-element bookkeeping).
    mutating func append(contentsOf elements: UnsafeBufferPointer<Element>) {
        var start = 0
        while start < elements.count {
            if count & (pageSize - 1) == 0 {
                pages.append([])
                spilled.append(nil)
                residentPageCount += 1
            }
            let last = pages.count - 1
            if pages[last].isEmpty && spilled[last] != nil { faultIn(last) }
            let room = pageSize - (count & (pageSize - 1))
            let end = min(elements.count, start + room)
            if pages[last].isEmpty { pages[last].reserveCapacity(end - start) }
            pages[last].append(contentsOf: UnsafeBufferPointer(rebasing: elements[start..<end]))
            count += end - start
            start = end
        }
    }

    /// Full, resident pages that may be spilled (never the last, which takes appends).
    var spillablePages: [Int] {
        guard pages.count > 1 else { return [] }
        return (0..<(pages.count - 1)).filter { !pages[$0].isEmpty }
    }

    /// Moves a full page's elements to the store. False if there is no store, or it failed.
    @discardableResult
    mutating func spill(page: Int) -> Bool {
        guard let spillStore, page < pages.count - 1, !pages[page].isEmpty else { return false }
        guard let token = pages[page].withUnsafeBytes({ spillStore.store($0) }) else { return false }
        spilled[page] = token
        pages[page] = []
        residentPageCount -= 1
        return true
    }

    private func loadPage(_ page: Int) -> [Element] {
        guard let token = spilled[page], let spillStore else {
            preconditionFailure("page \(page) is neither resident nor spilled")
        }
        let size = pageSize
        let bytes = spillStore.load(token, byteCount: size * MemoryLayout<Element>.stride)
        return Array(unsafeUninitializedCapacity: size) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                for i in 0..<size {
                    buffer[i] = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Element>.stride, as: Element.self)
                }
            }
            initialized = size
        }
    }

    private mutating func faultIn(_ page: Int) {
        pages[page] = loadPage(page)
        if let token = spilled[page] {
            spillStore?.discard(token, byteCount: pageSize * MemoryLayout<Element>.stride)
        }
        spilled[page] = nil
        residentPageCount += 1
    }

    /// Bytes reserved by the resident pages.
    var allocatedBytes: Int { pages.reduce(0) { $0 + $1.capacity } * MemoryLayout<Element>.stride }
}
