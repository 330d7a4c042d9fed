/// Where the delta records of old snapshot chunks go when the engine's in-memory budget for
/// them (`EngineConfiguration.deltaMemoryBytesMax`) is exceeded: the chunk keeps its snapshot
/// (the cumulative counters) and its first key in memory, and its records are handed to this
/// store. A query or a late event that lands in a spilled chunk loads them back.
///
/// The core stays free of I/O: the store is injected. `HeadcountStorage.SpillFile` keeps
/// them in a file; `InMemorySpillStore` is for tests. Spilled records are a cache of
/// state that snapshots and the WAL rebuild at start-up, so the file is recreated each run.
///
/// A store that cannot read back what it stored cannot answer a query exactly; it must stop
/// the process with a clear message rather than return wrong bytes.
public protocol SpillStore: AnyObject {
    /// Keeps the bytes; returns a token to load them with, or nil if they could not be kept
    /// (the records then stay in memory).
    func store(_ bytes: UnsafeRawBufferPointer) -> UInt64?
    /// The bytes stored under `token`.
    func load(_ token: UInt64, byteCount: Int) -> [UInt8]
    /// Calls `body` with the bytes stored under `token`, in memory aligned to
    /// `SpillStoreAlignment` that is valid only during the call: for a query that reads a
    /// spilled chunk and lets it go, without an array of its size per call.
    func withLoaded<Result>(_ token: UInt64, byteCount: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result
    /// The bytes under `token` are no longer needed.
    func discard(_ token: UInt64, byteCount: Int)
}

/// The alignment of the bytes `SpillStore.withLoaded` lends: enough for any record stored.
public let SpillStoreAlignment = 16

extension SpillStore {
    /// `load`, copied into aligned memory for the call.
    public func withLoaded<Result>(_ token: UInt64, byteCount: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let bytes = load(token, byteCount: byteCount)
        return withUnsafeTemporaryAllocation(byteCount: max(1, byteCount), alignment: SpillStoreAlignment) { buffer in
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[..<byteCount]))
        }
    }
}

/// A spill store in memory, for tests: it counts what it holds.
public final class InMemorySpillStore: SpillStore {
    private var blobs: [UInt64: [UInt8]] = [:]
    private var nextToken: UInt64 = 1
    public private(set) var loadCount = 0

    public init() {}

    public var storedByteCount: Int { blobs.values.reduce(0) { $0 + $1.count } }

    public func store(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let token = nextToken
        nextToken += 1
        blobs[token] = Array(bytes)
        return token
    }

    public func load(_ token: UInt64, byteCount: Int) -> [UInt8] {
        loadCount += 1
        guard let bytes = blobs[token], bytes.count == byteCount else {
            preconditionFailure("spilled delta records \(token) are missing")
        }
        return bytes
    }

    public func discard(_ token: UInt64, byteCount: Int) { blobs[token] = nil }
}
