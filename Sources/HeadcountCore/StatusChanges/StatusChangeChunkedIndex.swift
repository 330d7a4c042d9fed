extension SCL {
    /// A position in a `ChunkedIndex`: (chunk, offset). `chunk == chunks.count` is the end.
    struct Position: Comparable {
        var chunk: Int
        var offset: Int

        @inline(__always)
        static func < (a: Position, b: Position) -> Bool {
            a.chunk < b.chunk || (a.chunk == b.chunk && a.offset < b.offset)
        }
    }

    /// An ordered sequence of `UInt32` (record or string ids) kept as sorted chunks of at most
    /// `maxChunk` elements: a two-level B+tree. The order is the caller's: every operation
    /// that needs it takes a predicate "element sorts before the probe", true on a prefix.
    ///
    /// Insert: a binary search over chunk tails, one inside a chunk, then a memmove of at most
    /// `maxChunk` elements; a full chunk splits (an append at the very end opens a new chunk,
    /// so in-order appends fill chunks completely). Walking is O(1) per step both ways.
    struct ChunkedIndex {
        static let maxChunk = 1024

        private(set) var chunks: [[UInt32]] = []
        private(set) var count = 0

        init() {}

        /// Builds from elements already in order.
        init<S: Sequence>(sorted elements: S) where S.Element == UInt32 {
            var chunk: [UInt32] = []
            for element in elements {
                chunk.append(element)
                if chunk.count == ChunkedIndex.maxChunk {
                    chunks.append(chunk)
                    chunk = []
                }
                count += 1
            }
            if !chunk.isEmpty { chunks.append(chunk) }
        }

        var isEmpty: Bool { count == 0 }
        var startPosition: Position { Position(chunk: 0, offset: 0) }
        var endPosition: Position { Position(chunk: chunks.count, offset: 0) }
        var lastPosition: Position? { before(endPosition) }

        @inline(__always)
        subscript(position: Position) -> UInt32 {
            chunks[position.chunk][position.offset]
        }

        @inline(__always)
        func after(_ position: Position) -> Position {
            if position.offset + 1 < chunks[position.chunk].count {
                return Position(chunk: position.chunk, offset: position.offset + 1)
            }
            return Position(chunk: position.chunk + 1, offset: 0)
        }

        /// The previous position, or nil before the start.
        @inline(__always)
        func before(_ position: Position) -> Position? {
            if position.offset > 0 {
                return Position(chunk: position.chunk, offset: position.offset - 1)
            }
            if position.chunk > 0 {
                return Position(chunk: position.chunk - 1, offset: chunks[position.chunk - 1].count - 1)
            }
            return nil
        }

        /// The first position whose element does not satisfy `isBefore` (the end if all do).
        @inline(__always)
        func partitionPoint(_ isBefore: (UInt32) -> Bool) -> Position {
            var low = 0
            var high = chunks.count
            while low < high {
                let middle = (low + high) >> 1
                if isBefore(chunks[middle][chunks[middle].count - 1]) {
                    low = middle + 1
                } else {
                    high = middle
                }
            }
            if low == chunks.count { return endPosition }
            let offset = chunks[low].withUnsafeBufferPointer { chunk -> Int in
                var l = 0
                var h = chunk.count
                while l < h {
                    let m = (l + h) >> 1
                    if isBefore(chunk[m]) { l = m + 1 } else { h = m }
                }
                return l
            }
            return Position(chunk: low, offset: offset)
        }

        /// Inserts `element` at `partitionPoint(isBefore)`.
        mutating func insert(_ element: UInt32, isBefore: (UInt32) -> Bool) {
            count += 1
            guard let lastChunk = chunks.indices.last else {
                // Small indexes (most events) stay small: the first chunk grows on demand.
                chunks.append([element])
                return
            }
            if isBefore(chunks[lastChunk][chunks[lastChunk].count - 1]) {
                // Append at the very end: fill the last chunk, then open a new one.
                if chunks[lastChunk].count < ChunkedIndex.maxChunk {
                    chunks[lastChunk].append(element)
                } else {
                    var chunk: [UInt32] = []
                    chunk.reserveCapacity(ChunkedIndex.maxChunk)
                    chunk.append(element)
                    chunks.append(chunk)
                }
                return
            }
            let position = partitionPoint(isBefore)
            chunks[position.chunk].insert(element, at: position.offset)
            if chunks[position.chunk].count > ChunkedIndex.maxChunk {
                let full = chunks[position.chunk]
                let half = full.count / 2
                chunks[position.chunk] = Array(full[..<half])
                chunks.insert(Array(full[half...]), at: position.chunk + 1)
            }
        }

        /// Visits elements from `start` upwards to the end, or downwards to the beginning,
        /// a chunk at a time (no per-element position arithmetic); `visit` returns true to stop.
        @inline(__always)
        func scan(from start: Position?, up: Bool, _ visit: (UInt32) -> Bool) {
            guard var position = start, position.chunk < chunks.count else { return }
            var offset = position.offset
            if up {
                while position.chunk < chunks.count {
                    let stop = chunks[position.chunk].withUnsafeBufferPointer { buffer -> Bool in
                        var index = offset
                        while index < buffer.count {
                            if visit(buffer[index]) { return true }
                            index += 1
                        }
                        return false
                    }
                    if stop { return }
                    position.chunk += 1
                    offset = 0
                }
            } else {
                while true {
                    let stop = chunks[position.chunk].withUnsafeBufferPointer { buffer -> Bool in
                        var index = min(offset, buffer.count - 1)
                        while index >= 0 {
                            if visit(buffer[index]) { return true }
                            index -= 1
                        }
                        return false
                    }
                    if stop || position.chunk == 0 { return }
                    position.chunk -= 1
                    offset = chunks[position.chunk].count - 1
                }
            }
        }

        /// Calls `body` on every element in order.
        /// The elements in order, a chunk at a time.
        func forEachChunk(_ body: (UnsafeBufferPointer<UInt32>) throws -> Void) rethrows {
            for chunk in chunks { try chunk.withUnsafeBufferPointer(body) }
        }

        func forEach(_ body: (UInt32) throws -> Void) rethrows {
            for chunk in chunks {
                for element in chunk { try body(element) }
            }
        }

        /// Approximate heap bytes.
        var footprint: Int {
            var total = chunks.capacity * 8 + 32
            for chunk in chunks { total += chunk.capacity * 4 + 32 }
            return total
        }
    }
}
