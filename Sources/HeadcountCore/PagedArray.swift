/// An append-only array kept in fixed-size pages, whose pages can be spilled to a
/// `SpillStore` and are read back on first touch.
///
/// - Copies share pages copy-on-write, so after a snapshot takes a copy, the owner's next
///   change to a page copies that page alone (128 KiB with the default 4 Ki-entry pages) instead of the whole array.
/// - A page's elements live in one allocation of exactly `capacity × stride` bytes
///   (`PagedArray.Page`), not in a Swift array: an array's 32-byte header would push a
///   128 KiB page into jemalloc's 160 KiB size class (and Swift would fill the capacity it
///   got), 25% more memory per history entry (docs/BENCHMARKS.md, session 13).
/// - Spilling: `spill(page:)` hands a full page's bytes to the store and frees it; the next
///   access to it (the getter is `mutating`) reads it back and keeps it. A copy taken while a
///   page was spilled keeps the token and reads the page through `element(at:)` — the store's
///   bytes never change, so the copy sees the page as it was.
struct PagedArray<Element: BitwiseCopyable> {
    /// One page's elements: `count` of `capacity` initialized, in a buffer of its own.
    final class Page {
        let base: UnsafeMutablePointer<Element>
        let capacity: Int
        var count = 0

        init(capacity: Int) {
            base = .allocate(capacity: capacity)
            self.capacity = capacity
        }

        /// A copy with room for `capacity` elements (at least `count`).
        func copy(capacity: Int) -> Page {
            let page = Page(capacity: max(capacity, count))
            page.base.initialize(from: base, count: count)
            page.count = count
            return page
        }

        var elements: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }

        deinit { base.deallocate() }  // elements are bitwise-copyable: nothing to deinitialize
    }

    /// log2 of the elements per page.
    let pageShift: Int
    var pageSize: Int { 1 << pageShift }

    /// Resident pages; a spilled page is nil here (a resident page is never empty).
    private var pages: [Page?] = []
    /// Each resident page's element buffer (`pages[i]?.base`), so that a read is as many
    /// dependent loads as in an array of arrays: kept in step by `setPage`.
    private var bases: [UnsafeMutablePointer<Element>?] = []
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
            if bases[page] == nil { faultIn(page) }
            return bases[page].unsafelyUnwrapped[index & (pageSize - 1)]
        }
        _modify {
            let page = index >> pageShift
            makeUnique(page)
            yield &bases[page].unsafelyUnwrapped[index & (pageSize - 1)]
        }
    }

    /// Makes page `page` resident and owned by this array alone (copying it if a copy of the
    /// array shares it).
    @inline(__always)
    private mutating func makeUnique(_ page: Int) {
        if pages[page] == nil { faultIn(page) }
        if !isKnownUniquelyReferenced(&pages[page]) {
            let shared = pages[page].unsafelyUnwrapped
            setPage(page, shared.copy(capacity: shared.capacity))
        }
    }

    /// The element's address, for a prefetch instruction (never dereferenced); nil for a
    /// spilled page or an index past the end. Never faults a page in.
    @inline(__always)
    func prefetchAddress(_ index: Int) -> UnsafeRawPointer? {
        let page = index >> pageShift
        guard index >= 0, page < pages.count, let contents = pages[page] else { return nil }
        let offset = index & (pageSize - 1)
        guard offset < contents.count else { return nil }
        return UnsafeRawPointer(contents.base + offset)
    }

    /// The element, reading a spilled page from the store without keeping it (for copies
    /// encoded on another thread). O(page) when spilled.
    func element(at index: Int) -> Element {
        let page = index >> pageShift
        guard let contents = pages[page] else { return loadPage(page).base[index & (pageSize - 1)] }
        return contents.base[index & (pageSize - 1)]
    }

    /// The element of a page known to be resident (an array that never spills), without
    /// `mutating`: two dependent loads, no reference counting.
    @inline(__always)
    func residentElement(_ index: Int) -> Element {
        bases.withUnsafeBufferPointer { $0[index >> pageShift].unsafelyUnwrapped[index & (pageSize - 1)] }
    }

    /// The elements in order, a page at a time; every page must be resident.
    func forEachResidentPage(_ body: (UnsafeBufferPointer<Element>) throws -> Void) rethrows {
        for page in pages {
            guard let page else { preconditionFailure("forEachResidentPage over a spilled page") }
            try body(page.elements)
        }
    }

    /// A spilled page's elements, read from the store (for encoding many elements of it).
    func spilledPageContents(_ page: Int) -> Page { loadPage(page) }

    var pageCount: Int { pages.count }

    func isResident(_ page: Int) -> Bool { pages[page] != nil }

    mutating func append(_ element: Element) {
        if count & (pageSize - 1) == 0 { startPage() }
        let last = pages.count - 1
        reserveInLastPage(1)
        let contents = pages[last].unsafelyUnwrapped
        (contents.base + contents.count).initialize(to: element)
        contents.count += 1
        count += 1
    }

    /// Appends the elements page by page (one copy per page, no per-element bookkeeping).
    mutating func append(contentsOf elements: UnsafeBufferPointer<Element>) {
        var start = 0
        while start < elements.count {
            if count & (pageSize - 1) == 0 { startPage() }
            let last = pages.count - 1
            let room = pageSize - (count & (pageSize - 1))
            let end = min(elements.count, start + room)
            reserveInLastPage(end - start)
            let contents = pages[last].unsafelyUnwrapped
            (contents.base + contents.count).initialize(from: elements.baseAddress! + start, count: end - start)
            contents.count += end - start
            count += end - start
            start = end
        }
    }

    private mutating func startPage() {
        pages.append(nil)
        bases.append(nil)
        spilled.append(nil)
    }

    @inline(__always)
    private mutating func setPage(_ index: Int, _ page: Page?) {
        pages[index] = page
        bases[index] = page?.base
    }

    /// Makes the last page resident, owned alone, with room for `extra` more elements:
    /// grown by doubling up to a page, so small ledgers stay small.
    @inline(__always)
    private mutating func reserveInLastPage(_ extra: Int) {
        let last = pages.count - 1
        if pages[last] == nil {
            if spilled[last] != nil {
                faultIn(last)
            } else {
                setPage(last, Page(capacity: min(pageSize, max(16, extra))))
                residentPageCount += 1
            }
        }
        // Checked before anything here holds a reference to the page (that would make it
        // look shared, and every append would copy it).
        let isShared = !isKnownUniquelyReferenced(&pages[last])
        let (count, capacity) = (pages[last].unsafelyUnwrapped.count, pages[last].unsafelyUnwrapped.capacity)
        if count + extra > capacity || isShared {
            var grown = capacity
            while grown < count + extra { grown *= 2 }
            setPage(last, pages[last].unsafelyUnwrapped.copy(capacity: min(grown, pageSize)))
        }
    }

    /// Full, resident pages that may be spilled (never the last, which takes appends).
    var spillablePages: [Int] {
        guard pages.count > 1 else { return [] }
        return (0..<(pages.count - 1)).filter { pages[$0] != nil }
    }

    /// Moves a full page's elements to the store. False if there is no store, or it failed.
    @discardableResult
    mutating func spill(page: Int) -> Bool {
        guard let spillStore, page < pages.count - 1, let contents = pages[page] else { return false }
        guard let token = spillStore.store(UnsafeRawBufferPointer(contents.elements)) else { return false }
        spilled[page] = token
        setPage(page, nil)
        residentPageCount -= 1
        return true
    }

    private func loadPage(_ page: Int) -> Page {
        guard let token = spilled[page], let spillStore else {
            preconditionFailure("page \(page) is neither resident nor spilled")
        }
        let size = pageSize
        let bytes = spillStore.load(token, byteCount: size * MemoryLayout<Element>.stride)
        let contents = Page(capacity: size)
        bytes.withUnsafeBytes { raw in
            for i in 0..<size {
                (contents.base + i).initialize(to: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Element>.stride, as: Element.self))
            }
        }
        contents.count = size
        return contents
    }

    private mutating func faultIn(_ page: Int) {
        setPage(page, loadPage(page))
        if let token = spilled[page] {
            spillStore?.discard(token, byteCount: pageSize * MemoryLayout<Element>.stride)
        }
        spilled[page] = nil
        residentPageCount += 1
    }

    /// Bytes reserved by the resident pages.
    var allocatedBytes: Int { pages.reduce(0) { $0 + ($1?.capacity ?? 0) } * MemoryLayout<Element>.stride }
}
