extension SCL {
    /// One per-record field of an event's status changes (ids, dates, labels, statuses,
    /// payloads), indexed by local: an array kept in pages of 4 Ki elements (`PagedArray`, never
    /// spilled here), not one Swift array, so that
    /// - growing never copies the whole column (an array's doubling copied tens of megabytes
    ///   on the loop at a million changes) and leaves at most one page of room unused (an
    ///   array's doubling and jemalloc's size classes left 8–97% unused, depending on where
    ///   the count fell: 105 bytes a change at 1 M changes);
    /// - a snapshot's copy shares the pages, and the owner's next change copies the one page
    ///   it changes (the last one, for an append), not the column: with whole arrays the first
    ///   status change while the snapshot thread held its copy took 23 ms at 1 M changes
    ///   (docs/BENCHMARKS.md, session 14).
    struct Column<Element: BitwiseCopyable>: RandomAccessCollection {
        private var storage = PagedArray<Element>(pageShift: Column.pageShift)
        static var pageShift: Int { 12 }

        init() {}

        var startIndex: Int { 0 }
        var endIndex: Int { storage.count }

        @inline(__always)
        subscript(index: Int) -> Element {
            get {
                precondition(index >= 0 && index < storage.count, "column index out of range")
                return storage.residentElement(index)
            }
            set {
                precondition(index >= 0 && index < storage.count, "column index out of range")
                storage[index] = newValue
            }
        }

        mutating func append(_ element: Element) { storage.append(element) }

        /// Nothing to reserve: pages are allocated as they fill.
        mutating func reserveCapacity(_ count: Int) {}

        /// Runs `body` with this column (a view to read it through, as an array's
        /// `withUnsafeBufferPointer` would give).
        @inline(__always)
        func withReader<R>(_ body: (Column) throws -> R) rethrows -> R { try body(self) }

        /// The elements in order, a page at a time.
        func forEachPage(_ body: (UnsafeBufferPointer<Element>) throws -> Void) rethrows {
            try storage.forEachResidentPage(body)
        }

        /// Bytes reserved by its pages.
        var allocatedBytes: Int { storage.allocatedBytes }
    }
}
