/// One change of one event's counters: at (`occurredAt`, `sequence`) a ticket's contribution
/// lost the state bits of `minus` and gained those of `plus`, and the action counter `action`
/// (if any) counted one more action. 24 bytes: the three fields are packed into `changes`
/// (bits 0–26 minus, 27–53 plus, 54–59 action, 63 in the action field meaning none).
///
/// Every ticket or pass event of an event has exactly one record, even when it changes no
/// counter: the records' times are what `updatedAt` reports.
struct DeltaRecord {
    static let noAction: UInt8 = 63

    var occurredAt: Int64
    var sequence: UInt64
    var changes: UInt64

    init(occurredAt: Int64, sequence: UInt64, minus: UInt64, plus: UInt64, action: UInt8) {
        assert(minus & ~StateBit.allBits == 0 && plus & ~StateBit.allBits == 0 && action <= 63)
        self.occurredAt = occurredAt
        self.sequence = sequence
        changes = minus | (plus << 27) | (UInt64(action) << 54)
    }

    @inline(__always) var minus: UInt64 { changes & StateBit.allBits }
    @inline(__always) var plus: UInt64 { (changes >> 27) & StateBit.allBits }
    @inline(__always) var action: UInt8 { UInt8(truncatingIfNeeded: changes >> 54) }

    @inline(__always)
    mutating func setMasks(minus: UInt64, plus: UInt64) {
        changes = minus | (plus << 27) | (changes & ~((1 << 54) - 1))
    }

    @inline(__always)
    func precedes(occurredAt otherTime: Int64, sequence otherSequence: UInt64) -> Bool {
        occurredAt < otherTime || (occurredAt == otherTime && sequence < otherSequence)
    }
}

extension CounterVector {
    /// Adds (`sign` = 1) or removes (`sign` = -1) a change. O(bits set).
    @inline(__always)
    mutating func apply(minus: UInt64, plus: UInt64, action: UInt8, sign: Int64) {
        var bits = minus
        while bits != 0 {
            self[bits.trailingZeroBitCount] &-= sign
            bits &= bits &- 1
        }
        bits = plus
        while bits != 0 {
            self[bits.trailingZeroBitCount] &+= sign
            bits &= bits &- 1
        }
        if action != DeltaRecord.noAction { self[Int(action)] &+= sign }
    }

    @inline(__always)
    mutating func apply(_ record: DeltaRecord, sign: Int64 = 1) {
        apply(minus: record.minus, plus: record.plus, action: record.action, sign: sign)
    }
}

/// The history of one event's counters: its delta records sorted by (occurredAt, sequence),
/// cut into chunks, each chunk headed by a *snapshot* — the cumulative counters of every
/// record before the chunk. Together the snapshots are the event's ring of timestamped
/// checkpoints: the snapshot's time is its chunk's first record time.
///
/// - A query at T: binary search the last chunk starting at or before T (O(log chunks)),
///   then replay the shorter side of T within that chunk — forward from its snapshot or
///   backward from the next chunk's — at most `chunkCapacity` records.
/// - An on-time record appends to the last chunk: O(1) amortized.
/// - A late record (or a correction of an existing one) at time t updates the snapshots of
///   the chunks after t within its block of 64–128 chunks, and the offset of each later block:
///   O((block + blocks) × bits changed).
struct DeltaIndex {
    struct Chunk {
        /// Counters of every record before this chunk.
        var snapshot: CounterVector
        /// The records, or empty while they are spilled.
        var records: [DeltaRecord]
        /// Where the records are while spilled.
        var spilled: SpilledRecords?

        init(snapshot: CounterVector, records: [DeltaRecord]) {
            self.snapshot = snapshot
            self.records = records
        }

        var recordCount: Int { spilled.map { Int($0.count) } ?? records.count }
        var lastOccurredAt: Int64 { spilled?.lastOccurredAt ?? records.last!.occurredAt }
    }

    struct SpilledRecords {
        var token: UInt64
        var count: Int32
        var lastOccurredAt: Int64
    }

    private(set) var chunks: [Chunk] = []
    /// Consecutive chunks are grouped in blocks of 64–128; `blockOffsets[b]` is added to the
    /// stored snapshot of every chunk of block `b` (`snapshot(ofChunk:)`). A late record then
    /// corrects the chunks after it within its own block one by one and each later block once:
    /// O(block + blocks) instead of O(chunks).
    private var blockStarts: [Int] = [0]
    private var blockOffsets: [CounterVector] = [CounterVector()]
    private static var blockChunksMax: Int { 64 }
    /// Each chunk's first key, kept apart for a cache-friendly binary search.
    private var chunkFirstTimes: [Int64] = []
    private var chunkFirstSequences: [UInt64] = []
    /// The counters with every record applied (the answer for any T at or after `latestOccurredAt`).
    private(set) var live = CounterVector()
    private(set) var latestOccurredAt = Int64.min
    private(set) var recordCount = 0
    /// A chunk splits in two when it reaches twice this many records.
    let chunkCapacity: Int
    /// Records held in memory (the others are spilled).
    private(set) var residentRecordCount = 0
    /// Where spilled records go; nil: nothing is ever spilled.
    var spillStore: SpillStore?

    init(chunkCapacity: Int) {
        precondition(chunkCapacity >= 2, "a chunk must hold at least two records")
        self.chunkCapacity = chunkCapacity
    }

    /// The counters at `instant` and the latest record time at or before it (nil if none).
    func counters(at instant: Int64) -> (CounterVector, Int64?) {
        guard recordCount > 0, instant >= chunkFirstTimes[0] else { return (CounterVector(), nil) }
        if instant >= latestOccurredAt { return (live, latestOccurredAt) }
        let index = lastChunk(startingAtOrBefore: instant)
        let answer = { (records: UnsafeBufferPointer<DeltaRecord>) -> (CounterVector, Int64?) in
            // `applied`: how many records of the chunk are at or before the instant (≥ 1).
            var low = 0
            var high = records.count
            while low < high {
                let middle = (low + high) / 2
                if records[middle].occurredAt <= instant { low = middle + 1 } else { high = middle }
            }
            let applied = low
            // Replay the shorter side: forward from this chunk's snapshot, or backward from
            // the next one's. At most half a chunk either way.
            var counters: CounterVector
            if applied <= records.count - applied {
                counters = snapshot(ofChunk: index)
                for position in 0..<applied { counters.apply(records[position]) }
            } else {
                counters = index + 1 < chunks.count ? snapshot(ofChunk: index + 1) : live
                for position in applied..<records.count { counters.apply(records[position], sign: -1) }
            }
            return (counters, records[applied - 1].occurredAt)
        }
        if let spilled = chunks[index].spilled {
            // Read in place, into the store's reused buffer: no array of the chunk's size per
            // query (with a fragmented heap, malloc alone took a fifth of an idle loop
            // answering year-back queries at 24 M events).
            return withSpilled(spilled, answer)
        }
        return chunks[index].records.withUnsafeBufferPointer(answer)
    }

    /// `counters(at:)` on the index where it is stored: called on a class's stored property, the
    /// plain call copies the index first (a retain and release of each of its arrays).
    mutating func countersInPlace(at instant: Int64) -> (CounterVector, Int64?) {
        counters(at: instant)
    }

    /// Adds a new record at its place in time.
    mutating func insert(_ record: DeltaRecord) {
        recordCount += 1
        residentRecordCount += 1
        live.apply(record)
        if record.occurredAt > latestOccurredAt { latestOccurredAt = record.occurredAt }
        guard !chunks.isEmpty else {
            chunks.append(Chunk(snapshot: CounterVector(), records: [record]))
            chunkFirstTimes.append(record.occurredAt)
            chunkFirstSequences.append(record.sequence)
            return
        }
        let lastIndex = chunks.count - 1
        if let last = chunks[lastIndex].records.last, !record.precedes(occurredAt: last.occurredAt, sequence: last.sequence) {
            chunks[lastIndex].records.append(record)
            splitIfFull(lastIndex)
            return
        }
        // A late record: find its chunk and place, then correct every later snapshot.
        let index = chunkIndex(occurredAt: record.occurredAt, sequence: record.sequence)
        makeResident(index)
        let position = insertionPosition(in: index, occurredAt: record.occurredAt, sequence: record.sequence)
        chunks[index].records.insert(record, at: position)
        if position == 0 {
            chunkFirstTimes[index] = record.occurredAt
            chunkFirstSequences[index] = record.sequence
        }
        correctChunks(after: index, minus: record.minus, plus: record.plus, action: record.action, sign: 1)
        splitIfFull(index)
    }

    /// Replaces the change of the existing record at (`occurredAt`, `sequence`).
    mutating func update(occurredAt: Int64, sequence: UInt64, minus: UInt64, plus: UInt64) {
        let index = chunkIndex(occurredAt: occurredAt, sequence: sequence)
        makeResident(index)
        let position = insertionPosition(in: index, occurredAt: occurredAt, sequence: sequence) - 1
        precondition(position >= 0 && chunks[index].records[position].sequence == sequence
                     && chunks[index].records[position].occurredAt == occurredAt,
                     "a corrected delta record must exist")
        let old = chunks[index].records[position]
        chunks[index].records[position].setMasks(minus: minus, plus: plus)
        live.apply(minus: old.minus, plus: old.plus, action: DeltaRecord.noAction, sign: -1)
        live.apply(minus: minus, plus: plus, action: DeltaRecord.noAction, sign: 1)
        correctChunks(after: index, minus: old.minus, plus: old.plus, action: DeltaRecord.noAction, sign: -1)
        correctChunks(after: index, minus: minus, plus: plus, action: DeltaRecord.noAction, sign: 1)
    }

    /// Builds the index from records already sorted by (occurredAt, sequence): O(n).
    init(sortedRecords: [DeltaRecord], chunkCapacity: Int) {
        self.init(chunkCapacity: chunkCapacity)
        var start = 0
        while start < sortedRecords.count {
            let end = min(start + chunkCapacity, sortedRecords.count)
            let slice = Array(sortedRecords[start..<end])
            if chunks.count > 0 && chunks.count % Self.blockChunksMax == 0 {
                blockStarts.append(chunks.count)
                blockOffsets.append(CounterVector())
            }
            chunks.append(Chunk(snapshot: live, records: slice))
            chunkFirstTimes.append(slice[0].occurredAt)
            chunkFirstSequences.append(slice[0].sequence)
            for record in slice { live.apply(record) }
            start = end
        }
        recordCount = sortedRecords.count
        residentRecordCount = sortedRecords.count
        latestOccurredAt = sortedRecords.last?.occurredAt ?? Int64.min
    }

    // MARK: - Spilling

    /// The first chunk from `index` on that may be spilled (resident, not the last), with
    /// its last record's time. Chunks are in time order, so this is the ledger's oldest
    /// resident one when `index` is past every older chunk.
    func spillCandidate(from index: Int) -> (chunk: Int, lastOccurredAt: Int64)? {
        var candidate = max(index, firstMaybeResident)
        while candidate < chunks.count - 1 {
            if chunks[candidate].spilled == nil { return (candidate, chunks[candidate].lastOccurredAt) }
            candidate += 1
        }
        return nil
    }

    /// Moves a chunk's records to the spill store. False if there is no store, the chunk is
    /// the last or already spilled, or the store could not keep them.
    @discardableResult
    mutating func spill(chunk index: Int) -> Bool {
        guard let spillStore, index < chunks.count - 1, chunks[index].spilled == nil else { return false }
        let records = chunks[index].records
        let token = records.withUnsafeBytes { spillStore.store($0) }
        guard let token else { return false }
        chunks[index].spilled = SpilledRecords(token: token, count: Int32(records.count),
                                               lastOccurredAt: records.last!.occurredAt)
        chunks[index].records = []
        residentRecordCount -= records.count
        spilledChunkCount += 1
        if index == firstMaybeResident {
            while firstMaybeResident < chunks.count - 1 && chunks[firstMaybeResident].spilled != nil { firstMaybeResident += 1 }
        }
        return true
    }

    /// Every chunk before it is spilled: where a search for a chunk to spill starts. Each
    /// round of spilling starts each event from its first chunk; scanning the spilled ones
    /// again (one `Chunk` and a cache miss each) made a 1 MiB spill slice take 1–5 ms of the
    /// loop at ~20 M events (docs/BENCHMARKS.md, session 12). Chunks split or come back only
    /// where they are resident, at or after it; `makeResident` moves it back.
    private var firstMaybeResident = 0

    /// Bytes held: resident records (by capacity) and every chunk's snapshot and keys.
    var allocatedBytes: Int {
        var bytes = chunks.capacity * MemoryLayout<Chunk>.stride + chunkFirstTimes.capacity * 16
        for chunk in chunks { bytes += chunk.records.capacity * MemoryLayout<DeltaRecord>.stride }
        return bytes
    }

    /// Chunks whose records are spilled (kept as they spill and come back: `/metrics` asks
    /// for the sum over every event each time).
    private(set) var spilledChunkCount = 0
    /// `spilledChunkCount` counted afresh (for tests).
    var spilledChunksCounted: Int { chunks.reduce(0) { $0 + ($1.spilled == nil ? 0 : 1) } }

    /// Calls `body` with a spilled chunk's records, valid during the call.
    private func withSpilled<Result>(_ spilled: SpilledRecords, _ body: (UnsafeBufferPointer<DeltaRecord>) -> Result) -> Result {
        let byteCount = Int(spilled.count) * MemoryLayout<DeltaRecord>.stride
        precondition(MemoryLayout<DeltaRecord>.alignment <= SpillStoreAlignment)
        return spillStore!.withLoaded(spilled.token, byteCount: byteCount) { raw in
            precondition(raw.count == byteCount, "spilled delta records came back with \(raw.count) of \(byteCount) bytes")
            return raw.withMemoryRebound(to: DeltaRecord.self, body)
        }
    }

    private func loadSpilled(_ spilled: SpilledRecords) -> [DeltaRecord] {
        withSpilled(spilled) { Array($0) }
    }

    /// Brings a spilled chunk's records back into memory (a late event lands in it).
    private mutating func makeResident(_ index: Int) {
        guard let spilled = chunks[index].spilled else { return }
        chunks[index].records = loadSpilled(spilled)
        chunks[index].spilled = nil
        spilledChunkCount -= 1
        firstMaybeResident = min(firstMaybeResident, index)
        spillStore!.discard(spilled.token, byteCount: Int(spilled.count) * MemoryLayout<DeltaRecord>.stride)
        residentRecordCount += Int(spilled.count)
    }

    // MARK: - Blocks

    /// The block holding chunk `index`. O(log blocks).
    private func block(ofChunk index: Int) -> Int {
        DeltaIndex.lastPosition(in: blockStarts, atOrBelow: index)
    }

    /// The last position in a sorted, non-empty array whose value is ≤ `value`, or 0.
    /// O(log n).
    private static func lastPosition<T: Comparable>(in sorted: [T], atOrBelow value: T) -> Int {
        var low = 0
        var high = sorted.count  // invariant: answer in [low, high)
        while high - low > 1 {
            let middle = (low + high) / 2
            if sorted[middle] <= value { low = middle } else { high = middle }
        }
        return low
    }

    /// The cumulative counters of every record before chunk `index`.
    func snapshot(ofChunk index: Int) -> CounterVector {
        var snapshot = chunks[index].snapshot
        snapshot.add(blockOffsets[block(ofChunk: index)])
        return snapshot
    }

    /// Adds a change to the snapshots of every chunk after `index`.
    private mutating func correctChunks(after index: Int, minus: UInt64, plus: UInt64, action: UInt8, sign: Int64) {
        let block = block(ofChunk: index)
        let blockEnd = block + 1 < blockStarts.count ? blockStarts[block + 1] : chunks.count
        for later in (index + 1)..<blockEnd {
            chunks[later].snapshot.apply(minus: minus, plus: plus, action: action, sign: sign)
        }
        for later in (block + 1)..<blockStarts.count {
            blockOffsets[later].apply(minus: minus, plus: plus, action: action, sign: sign)
        }
    }

    // MARK: - Positions

    /// The last chunk whose first record time is ≤ `instant` (there is one: the caller checked chunk 0).
    private func lastChunk(startingAtOrBefore instant: Int64) -> Int {
        DeltaIndex.lastPosition(in: chunkFirstTimes, atOrBelow: instant)
    }

    /// The last chunk whose first key is ≤ the key, or 0.
    private func chunkIndex(occurredAt: Int64, sequence: UInt64) -> Int {
        var low = 0
        var high = chunkFirstTimes.count
        while high - low > 1 {
            let middle = (low + high) / 2
            let time = chunkFirstTimes[middle]
            if time < occurredAt || (time == occurredAt && chunkFirstSequences[middle] <= sequence) {
                low = middle
            } else {
                high = middle
            }
        }
        return low
    }

    /// The first position in the chunk whose key is greater than the key.
    private func insertionPosition(in index: Int, occurredAt: Int64, sequence: UInt64) -> Int {
        chunks[index].records.withUnsafeBufferPointer { records in
            var low = 0
            var high = records.count
            while low < high {
                let middle = (low + high) / 2
                let record = records[middle]
                if record.occurredAt < occurredAt || (record.occurredAt == occurredAt && record.sequence <= sequence) {
                    low = middle + 1
                } else {
                    high = middle
                }
            }
            return low
        }
    }

    private mutating func splitIfFull(_ index: Int) {
        guard chunks[index].records.count >= 2 * chunkCapacity else { return }
        let half = chunks[index].records.count / 2
        let tail = Array(chunks[index].records[half...])
        chunks[index].records = Array(chunks[index].records[..<half])  // drops the spare capacity too
        var snapshot = chunks[index].snapshot
        for record in chunks[index].records { snapshot.apply(record) }
        // The new chunk joins its predecessor's block: the same offset applies to both.
        chunks.insert(Chunk(snapshot: snapshot, records: tail), at: index + 1)
        let block = block(ofChunk: index)
        for later in (block + 1)..<blockStarts.count { blockStarts[later] += 1 }
        let blockEnd = block + 1 < blockStarts.count ? blockStarts[block + 1] : chunks.count
        if blockEnd - blockStarts[block] > 2 * Self.blockChunksMax {
            blockStarts.insert(blockStarts[block] + Self.blockChunksMax, at: block + 1)
            blockOffsets.insert(blockOffsets[block], at: block + 1)
        }
        chunkFirstTimes.insert(tail[0].occurredAt, at: index + 1)
        chunkFirstSequences.insert(tail[0].sequence, at: index + 1)
    }
}
