#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import HeadcountCore

/// An in-memory disk for tests that can crash.
///
/// The model, deliberately stricter than most real file systems:
/// - A file's content is durable up to its last `sync()`. `crash()` throws away every change
///   made since (or, with tearing on, keeps a random prefix of them in order — writes at any
///   offset, appends, truncations — the last one kept possibly torn: a prefix of its bytes,
///   as a power cut in the middle of a write would leave).
/// - A directory's entries (creations, renames, removals) are durable only after
///   `syncDirectory`. `crash()` restores the entries as of the last sync: a file created and
///   synced, but whose directory was not, disappears; a removed file can reappear.
/// - Directories themselves (`makeDirectory`) are durable at once.
/// - After `crash()`, every `StorageFile` opened before it fails with EBADF: the process
///   that held it is gone.
///
/// Faults can be injected: `failNext(_:errno:)` makes the next such operation fail (a failed
/// append or write lands half of its bytes first, like a disk that fills up mid-write), and
/// `crash(afterOperations:)` crashes in the middle of whatever the code is doing: the n-th
/// next changing operation does not happen (an append does, then the crash tears it), the
/// disk crashes, and every operation throws `SimulatedCrash` until `crash()` is called to
/// "restart" (a second crash changes nothing: everything left is durable).
///
/// All state sits behind one lock: safe to use from several threads.
public final class SimulatedFileSystem: StorageFileSystem, @unchecked Sendable {
    /// Operations a fault can be injected into.
    public enum Operation: Hashable, Sendable {
        case create, append, write, sync, truncate, rename, remove, syncDirectory
    }

    /// A change to a file's content, kept until the next sync: what a crash may keep.
    enum Change {
        case write(offset: Int, bytes: [UInt8])
        case truncate(length: Int)

        func apply(to data: inout [UInt8]) {
            switch self {
            case .write(let offset, let bytes):
                guard !bytes.isEmpty else { return }
                if data.count < offset { data.append(contentsOf: repeatElement(0, count: offset - data.count)) }
                let overlap = min(bytes.count, data.count - offset)
                data.replaceSubrange(offset..<(offset + overlap), with: bytes[..<overlap])
                data.append(contentsOf: bytes[overlap...])
            case .truncate(let length):
                if length <= data.count {
                    data.removeLast(data.count - length)
                } else {
                    data.append(contentsOf: repeatElement(0, count: length - data.count))
                }
            }
        }
    }

    final class Inode {
        var data: [UInt8] = []
        var durable: [UInt8] = []
        /// The changes since the last sync, in order (`data` = `durable` + all of them).
        var unsynced: [Change] = []

        func change(_ change: Change) {
            change.apply(to: &data)
            unsynced.append(change)
        }
    }

    private let lock = NSLock()
    private var directories: Set<String> = []
    private var entries: [String: Inode] = [:]
    private var durableEntries: [String: Inode] = [:]
    private var generation = 0
    private var faults: [Operation: Int32] = [:]
    private var operationsUntilCrash: Int?
    private var isHalted = false
    private var random: SplitMix64

    private var isTearingWrites: Bool

    /// Whether `crash()` keeps a random prefix of each file's unsynced tail.
    public var tearsWrites: Bool {
        get { lock.lock(); defer { lock.unlock() }; return isTearingWrites }
        set { lock.lock(); defer { lock.unlock() }; isTearingWrites = newValue }
    }

    /// - Parameters:
    ///   - tearsWrites: see `crash()`.
    ///   - seed: drives the torn lengths, so a run replays exactly.
    public init(tearsWrites: Bool = false, seed: UInt64 = 0) {
        self.isTearingWrites = tearsWrites
        self.random = SplitMix64(seed: seed)
        directories.insert("/")
    }

    /// Simulates a power cut: every file loses what was written since its last sync (or, if
    /// `tearsWrites`, keeps a random prefix of it), every directory its unsynced entries, and
    /// every open file becomes unusable. Faults not yet triggered are forgotten.
    public func crash() {
        lock.lock(); defer { lock.unlock() }
        performCrash()
        isHalted = false
        operationsUntilCrash = nil
        faults = [:]
    }

    /// Arms a crash in the middle of the code under test: the `count`-th next changing
    /// operation (create, append, write, sync, truncate, rename, remove, directory sync) crashes the
    /// disk and throws `SimulatedCrash`; so does every operation after it until `crash()`.
    public func crash(afterOperations count: Int) {
        precondition(count >= 1)
        lock.lock(); defer { lock.unlock() }
        operationsUntilCrash = count
    }

    /// Whether an armed crash has happened and `crash()` has not been called since.
    public var isCrashed: Bool { lock.lock(); defer { lock.unlock() }; return isHalted }

    /// Under the lock.
    private func performCrash() {
        generation += 1
        entries = durableEntries
        var seen = Set<ObjectIdentifier>()
        // Sorted, so that the torn lengths drawn from the seeded generator replay exactly.
        for path in entries.keys.sorted() {
            let inode = entries[path]!
            guard seen.insert(ObjectIdentifier(inode)).inserted else { continue }
            if isTearingWrites && !inode.unsynced.isEmpty {
                // A prefix of the changes reached the disk, the next one torn (a prefix of
                // its bytes; a truncation is all or nothing).
                var image = inode.durable
                let kept = Int(random.next() % UInt64(inode.unsynced.count + 1))
                for change in inode.unsynced.prefix(kept) { change.apply(to: &image) }
                if kept < inode.unsynced.count, case .write(let offset, let bytes) = inode.unsynced[kept] {
                    let torn = Int(random.next() % UInt64(bytes.count + 1))
                    Change.write(offset: offset, bytes: Array(bytes.prefix(torn))).apply(to: &image)
                }
                inode.data = image
            } else {
                inode.data = inode.durable
            }
            inode.durable = inode.data
            inode.unsynced = []
        }
    }

    /// Makes the next `operation` fail with `errno`.
    public func failNext(_ operation: Operation, errno: Int32 = EIO) {
        lock.lock(); defer { lock.unlock() }
        faults[operation] = errno
    }

    /// Replaces a file's content outright, durably: for tests that corrupt or tear files.
    public func overwriteFile(_ path: String, with bytes: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        let inode = entries[path] ?? Inode()
        inode.data = bytes
        inode.durable = bytes
        inode.unsynced = []
        entries[path] = inode
        durableEntries[path] = inode
    }

    /// The bytes of a file as the process sees them now; nil if there is none.
    public func contents(of path: String) -> [UInt8]? {
        lock.lock(); defer { lock.unlock() }
        return entries[path]?.data
    }

    // MARK: StorageFileSystem

    public func makeDirectory(_ path: String) throws {
        lock.lock(); defer { lock.unlock() }
        try begin(nil, path: path, operation: "mkdir")
        var prefix = ""
        for component in normalized(path).split(separator: "/") {
            prefix += "/" + component
            if entries[prefix] != nil { throw StorageError(operation: "mkdir", path: prefix, errno: ENOTDIR) }
            directories.insert(prefix)
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        lock.lock(); defer { lock.unlock() }
        try begin(nil, path: path, operation: "opendir")
        let directory = normalized(path)
        guard directories.contains(directory) else { throw StorageError(operation: "opendir", path: path, errno: ENOENT) }
        let prefix = directory == "/" ? "/" : directory + "/"
        var names: [String] = []
        for key in entries.keys where key.hasPrefix(prefix) {
            let name = key.dropFirst(prefix.count)
            if !name.contains("/") { names.append(String(name)) }
        }
        for key in directories where key.hasPrefix(prefix) && key != directory {
            let name = key.dropFirst(prefix.count)
            if !name.contains("/") { names.append(String(name)) }
        }
        return names
    }

    public func openFile(_ path: String) throws -> StorageFile {
        lock.lock(); defer { lock.unlock() }
        try begin(nil, path: path, operation: "open")
        guard let inode = entries[normalized(path)] else { throw StorageError(operation: "open", path: path, errno: ENOENT) }
        return SimulatedFile(path: path, inode: inode, fileSystem: self, generation: generation)
    }

    public func createFile(_ path: String, exclusive: Bool) throws -> StorageFile {
        lock.lock(); defer { lock.unlock() }
        try begin(.create, path: path, operation: "open")
        let key = normalized(path)
        guard directories.contains(parent(of: key)) else { throw StorageError(operation: "open", path: path, errno: ENOENT) }
        guard !directories.contains(key) else { throw StorageError(operation: "open", path: path, errno: EISDIR) }
        let inode: Inode
        if let existing = entries[key] {
            if exclusive { throw StorageError(operation: "open", path: path, errno: EEXIST) }
            inode = existing
            inode.change(.truncate(length: 0))
        } else {
            inode = Inode()
            entries[key] = inode
        }
        return SimulatedFile(path: path, inode: inode, fileSystem: self, generation: generation)
    }

    public func readFile(_ path: String) throws -> [UInt8] {
        lock.lock(); defer { lock.unlock() }
        try begin(nil, path: path, operation: "open")
        guard let inode = entries[normalized(path)] else { throw StorageError(operation: "open", path: path, errno: ENOENT) }
        return inode.data
    }

    public func fileSize(_ path: String) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        try begin(nil, path: path, operation: "stat")
        guard let inode = entries[normalized(path)] else { throw StorageError(operation: "stat", path: path, errno: ENOENT) }
        return inode.data.count
    }

    public func rename(_ source: String, to destination: String) throws {
        lock.lock(); defer { lock.unlock() }
        try begin(.rename, path: source, operation: "rename to \(destination)")
        let from = normalized(source), to = normalized(destination)
        guard let inode = entries[from] else {
            throw StorageError(operation: "rename to \(destination)", path: source, errno: ENOENT)
        }
        guard directories.contains(parent(of: to)), !directories.contains(to) else {
            throw StorageError(operation: "rename to \(destination)", path: source, errno: ENOENT)
        }
        entries[from] = nil
        entries[to] = inode
    }

    public func removeFile(_ path: String) throws {
        lock.lock(); defer { lock.unlock() }
        try begin(.remove, path: path, operation: "unlink")
        guard entries.removeValue(forKey: normalized(path)) != nil else {
            throw StorageError(operation: "unlink", path: path, errno: ENOENT)
        }
    }

    public func syncDirectory(_ path: String) throws {
        lock.lock(); defer { lock.unlock() }
        try begin(.syncDirectory, path: path, operation: "fsync directory")
        let directory = normalized(path)
        guard directories.contains(directory) else {
            throw StorageError(operation: "open directory", path: path, errno: ENOENT)
        }
        for key in Array(durableEntries.keys) where parent(of: key) == directory { durableEntries[key] = nil }
        for (key, inode) in entries where parent(of: key) == directory { durableEntries[key] = inode }
    }

    // MARK: Helpers used by SimulatedFile (under the lock)

    fileprivate func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    fileprivate var currentGeneration: Int { generation }

    /// Under the lock, before every operation: throws while halted by an armed crash; for a
    /// changing operation (`change` non-nil), counts down to the armed crash and throws the
    /// injected fault, if any. `applyBeforeCrash` runs when this operation is the one that
    /// crashes (an append or a write lands, then the crash tears it).
    fileprivate func begin(_ change: Operation?, path: String, operation: String,
                           applyBeforeCrash: () -> Void = {}) throws {
        if isHalted { throw SimulatedCrash() }
        guard let change else { return }
        if let remaining = operationsUntilCrash {
            if remaining <= 1 {
                applyBeforeCrash()
                operationsUntilCrash = nil
                performCrash()
                isHalted = true
                throw SimulatedCrash()
            }
            operationsUntilCrash = remaining - 1
        }
        if let error = faults.removeValue(forKey: change) {
            throw StorageError(operation: operation, path: path, errno: error)
        }
    }

    private func normalized(_ path: String) -> String {
        let components = path.split(separator: "/")
        return "/" + components.joined(separator: "/")
    }

    private func parent(of key: String) -> String {
        guard let slash = key.lastIndex(of: "/"), slash != key.startIndex else { return "/" }
        return String(key[..<slash])
    }
}

/// A file open on a `SimulatedFileSystem`.
final class SimulatedFile: StorageFile {
    let path: String
    private let inode: SimulatedFileSystem.Inode
    private unowned let fileSystem: SimulatedFileSystem
    private let generation: Int
    private var isOpen = true

    init(path: String, inode: SimulatedFileSystem.Inode, fileSystem: SimulatedFileSystem, generation: Int) {
        self.path = path
        self.inode = inode
        self.fileSystem = fileSystem
        self.generation = generation
    }

    /// Under the lock: throws if the disk is halted by a crash, or if the file was closed or a
    /// crash happened since it was opened.
    private func checkUsable(_ operation: String) throws {
        try fileSystem.begin(nil, path: path, operation: operation)
        if !isOpen || generation != fileSystem.currentGeneration {
            throw StorageError(operation: operation, path: path, errno: EBADF)
        }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try fileSystem.withLock {
            try checkUsable("write")
            try write(bytes, at: inode.data.count, as: .append, operation: "write")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        precondition(offset >= 0, "negative file offset")
        try fileSystem.withLock {
            try checkUsable("pwrite")
            try write(bytes, at: offset, as: .write, operation: "pwrite")
        }
    }

    /// Under the lock.
    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, as kind: SimulatedFileSystem.Operation,
                       operation: String) throws {
        let bytes = Array(bytes)
        do {
            try fileSystem.begin(kind, path: path, operation: operation,
                                 applyBeforeCrash: { inode.change(.write(offset: offset, bytes: bytes)) })
        } catch let error as StorageError {
            inode.change(.write(offset: offset, bytes: Array(bytes.prefix(bytes.count / 2))))
            throw error
        }
        inode.change(.write(offset: offset, bytes: bytes))
    }

    func read(offset: Int, count: Int) throws -> [UInt8] {
        try fileSystem.withLock {
            try checkUsable("pread")
            guard offset < inode.data.count, count > 0 else { return [] }
            return Array(inode.data[offset..<min(inode.data.count, offset + count)])
        }
    }

    func size() throws -> Int {
        try fileSystem.withLock {
            try checkUsable("fstat")
            return inode.data.count
        }
    }

    func truncate(to length: Int) throws {
        try fileSystem.withLock {
            try checkUsable("ftruncate")
            try fileSystem.begin(.truncate, path: path, operation: "ftruncate")
            inode.change(.truncate(length: length))
        }
    }

    func sync() throws {
        try fileSystem.withLock {
            try checkUsable("fdatasync")
            try fileSystem.begin(.sync, path: path, operation: "fdatasync")
            inode.durable = inode.data
            inode.unsynced = []
        }
    }

    func close() throws {
        try fileSystem.withLock {
            guard isOpen else { throw StorageError(operation: "close", path: path, errno: EBADF) }
            isOpen = false
        }
    }
}

/// Thrown by every operation on a `SimulatedFileSystem` from an armed crash until `crash()`.
public struct SimulatedCrash: Error, CustomStringConvertible {
    public var description: String { "simulated crash" }
}

