#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The small storage interface the WAL and the snapshot store are written against, so that a
/// test can swap the disk for `SimulatedFileSystem` and make it crash and tear writes
/// (TigerBeetle's habit: storage injected behind an interface, a seeded simulation replays).
///
/// Paths are plain strings; a file's path is `directory + "/" + name`. Implementations must
/// be safe to use from several threads as long as one `StorageFile` is used by one thread at
/// a time.
public protocol StorageFileSystem: AnyObject {
    /// Creates `path` and any missing parents; succeeds if it already exists.
    func makeDirectory(_ path: String) throws
    /// The names (not paths) of the entries in directory `path`, in no particular order.
    func listDirectory(_ path: String) throws -> [String]
    /// Opens an existing file for reading and writing (appends, or writes at an offset).
    func openFile(_ path: String) throws -> StorageFile
    /// `openFile`, asking with `writesThrough` that each `write(_:at:)` be durable when it
    /// returns, where the implementation can do that more cheaply than a write and a `sync`
    /// (`POSIXFileSystem`: `O_DIRECT | O_DSYNC`, see there). `sync()` must still be called
    /// for durability; it is free when every write since the last one went through.
    ///
    /// Only for files written in order into room of zeros: a write may also rewrite the
    /// zeros after its last byte up to the next 4 KiB boundary. The WAL's preallocated
    /// segments are such files. The default ignores the request (`openFile(path)`).
    func openFile(_ path: String, writesThrough: Bool) throws -> StorageFile
    /// Creates a new empty file (failing with EEXIST if `exclusive` and it exists, otherwise
    /// truncating an existing one) and opens it for reading and writing.
    func createFile(_ path: String, exclusive: Bool) throws -> StorageFile
    /// `createFile`, asking with `bypassingPageCache` that appends go to the device in pieces
    /// of about `chunkBytes` without passing through the page cache, where the implementation
    /// can (`POSIXFileSystem`: `O_DIRECT`). For a big file written front to back (a snapshot).
    /// The same bytes, the same durability: after `sync()`. The default ignores the request.
    func createFile(_ path: String, exclusive: Bool, bypassingPageCache: Bool, chunkBytes: Int) throws -> StorageFile
    /// The whole content of a file.
    func readFile(_ path: String) throws -> [UInt8]
    /// The size of a file in bytes.
    func fileSize(_ path: String) throws -> Int
    /// Atomically replaces `destination` with `source` (POSIX `rename`). Durable only after
    /// `syncDirectory` of the directory.
    func rename(_ source: String, to destination: String) throws
    /// Removes a file. Durable only after `syncDirectory` of the directory.
    func removeFile(_ path: String) throws
    /// Makes the directory's entries (creations, renames, removals) durable.
    func syncDirectory(_ path: String) throws
}

/// An open file: appends at the end, writes and reads anywhere.
public protocol StorageFile: AnyObject {
    var path: String { get }
    /// Appends all of `bytes` at the end of the file (retrying short writes and EINTR). On
    /// an error, a prefix of `bytes` may have been written.
    func append(_ bytes: UnsafeRawBufferPointer) throws
    /// Writes all of `bytes` at `offset` (`pwrite`, retrying short writes and EINTR),
    /// overwriting what is there and extending the file if they reach past its end (a gap
    /// between the old end and `offset` reads as zeros). On an error, a prefix of `bytes` may
    /// have been written.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws
    /// Up to `count` bytes from `offset` (fewer at the end of the file).
    func read(offset: Int, count: Int) throws -> [UInt8]
    /// The current size in bytes.
    func size() throws -> Int
    /// Cuts the file to `length` bytes.
    func truncate(to length: Int) throws
    /// Makes the file's content durable (`fdatasync`).
    func sync() throws
    /// Closes the file; later calls throw. Called by `deinit` if forgotten.
    func close() throws
    /// Whether writes can go through to the disk when they return (see
    /// `StorageFileSystem.openFile(_:writesThrough:)`); false by default.
    var writesThrough: Bool { get }
}

extension StorageFileSystem {
    public func openFile(_ path: String, writesThrough: Bool) throws -> StorageFile {
        try openFile(path)
    }

    public func createFile(_ path: String, exclusive: Bool, bypassingPageCache: Bool, chunkBytes: Int) throws -> StorageFile {
        try createFile(path, exclusive: exclusive)
    }
}

extension StorageFile {
    public var writesThrough: Bool { false }

    /// Appends all of `bytes` (see `append(_: UnsafeRawBufferPointer)`).
    public func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    /// Writes all of `bytes` at `offset` (see `write(_:at:)`).
    public func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }
}

/// An environmental error from the file system: what was attempted, on which path, and the
/// `errno` with its `strerror` text.
public struct StorageError: Error, CustomStringConvertible, Equatable {
    /// The operation: "open", "write", "fdatasync", "rename", …
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// `strerror(errno)`.
    public var message: String { String(cString: strerror(errno)) }

    public var description: String { "\(operation) \(path): \(message) (errno \(errno))" }
}

/// Joins a directory and a name.
@inline(__always)
func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// Creates `directory` (and parents) and syncs its parent, so that a directory created at
/// first start-up survives a crash along with the files later synced in it.
func makeDurableDirectory(_ directory: String, on fileSystem: StorageFileSystem) throws {
    try fileSystem.makeDirectory(directory)
    var trimmed = Substring(directory)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    let parent: String
    if let slash = trimmed.lastIndex(of: "/") {
        parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    } else {
        parent = "."
    }
    try fileSystem.syncDirectory(parent)
}

/// Sequence numbers in file names: 20 decimal digits, zero-padded, so that names sort in
/// sequence order (UInt64.max has 20 digits).
func paddedSequence(_ sequence: UInt64) -> String {
    let digits = String(sequence)
    return String(repeating: "0", count: 20 - digits.count) + digits
}

/// Parses `prefix` + 20 digits + `suffix`; nil for any other name.
func parseSequenceName(_ name: String, prefix: String, suffix: String) -> UInt64? {
    let utf8 = Array(name.utf8)
    let prefixBytes = Array(prefix.utf8), suffixBytes = Array(suffix.utf8)
    guard utf8.count == prefixBytes.count + 20 + suffixBytes.count,
          utf8.starts(with: prefixBytes), utf8.suffix(suffixBytes.count).elementsEqual(suffixBytes)
    else { return nil }
    var value: UInt64 = 0
    for byte in utf8[prefixBytes.count..<(prefixBytes.count + 20)] {
        guard byte >= 0x30 && byte <= 0x39 else { return nil }
        let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
        guard !overflow1 && !overflow2 else { return nil }
        value = sum
    }
    return value
}
