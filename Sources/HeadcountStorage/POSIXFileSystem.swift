#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real disk, through POSIX calls. Every call retries on EINTR; every failure is a
/// `StorageError` with the operation, the path and errno.
public final class POSIXFileSystem: StorageFileSystem, @unchecked Sendable {
    public init() {}

    public func makeDirectory(_ path: String) throws {
        // Create parents first, like `mkdir -p`.
        let isAbsolute = path.hasPrefix("/")
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix = prefix.isEmpty ? (isAbsolute ? "/" : "") + component : prefix + "/" + component
            if mkdir(prefix, 0o755) != 0 {
                let error = errno
                guard error == EEXIST else { throw StorageError(operation: "mkdir", path: prefix, errno: error) }
                var info = stat()
                if stat(prefix, &info) != 0 || (info.st_mode & S_IFMT) != S_IFDIR {
                    throw StorageError(operation: "mkdir", path: prefix, errno: ENOTDIR)
                }
            }
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            throw StorageError(operation: "opendir", path: path, errno: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw StorageError(operation: "readdir", path: path, errno: errno) }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // No O_APPEND: on Linux it makes pwrite append whatever the offset. `append` seeks to
    // the end instead (one thread per file at a time, so nothing moves the end meanwhile).
    public func openFile(_ path: String) throws -> StorageFile {
        try POSIXFile(path: path, flags: O_RDWR | O_CLOEXEC)
    }

    public func createFile(_ path: String, exclusive: Bool) throws -> StorageFile {
        let flags = O_RDWR | O_CLOEXEC | O_CREAT | (exclusive ? O_EXCL : O_TRUNC)
        return try POSIXFile(path: path, flags: flags)
    }

    public func readFile(_ path: String) throws -> [UInt8] {
        let file = try POSIXFile(path: path, flags: O_RDONLY | O_CLOEXEC)
        defer { try? file.close() }
        let size = try file.size()
        var bytes = try file.read(offset: 0, count: size)
        // The file may have grown since fstat; read whatever follows.
        while true {
            let more = try file.read(offset: bytes.count, count: 1 << 16)
            if more.isEmpty { break }
            bytes += more
        }
        return bytes
    }

    public func fileSize(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw StorageError(operation: "stat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    public func rename(_ source: String, to destination: String) throws {
        guard systemRename(source, destination) == 0 else {
            throw StorageError(operation: "rename to \(destination)", path: source, errno: errno)
        }
    }

    public func removeFile(_ path: String) throws {
        guard unlink(path) == 0 else { throw StorageError(operation: "unlink", path: path, errno: errno) }
    }

    public func syncDirectory(_ path: String) throws {
        let descriptor = try openRetrying(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, operation: "open directory")
        defer { _ = systemClose(descriptor) }
        while fsync(descriptor) != 0 {
            let error = errno
            if error != EINTR { throw StorageError(operation: "fsync directory", path: path, errno: error) }
        }
    }
}

// File-scope wrappers: inside the classes these names are taken by methods.
private func systemRename(_ source: String, _ destination: String) -> Int32 { rename(source, destination) }
private func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }

private func openRetrying(_ path: String, _ flags: Int32, operation: String) throws -> Int32 {
    while true {
        let descriptor = open(path, flags, 0o644)
        if descriptor >= 0 { return descriptor }
        let error = errno
        if error != EINTR { throw StorageError(operation: operation, path: path, errno: error) }
    }
}

/// An open file descriptor.
final class POSIXFile: StorageFile {
    let path: String
    private var descriptor: Int32

    init(path: String, flags: Int32) throws {
        self.path = path
        self.descriptor = try openRetrying(path, flags, operation: "open")
    }

    deinit {
        if descriptor >= 0 { _ = systemClose(descriptor) }
    }

    private func checkOpen(_ operation: String) throws {
        if descriptor < 0 { throw StorageError(operation: operation, path: path, errno: EBADF) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try checkOpen("write")
        let end = lseek(descriptor, 0, SEEK_END)
        guard end >= 0 else { throw StorageError(operation: "lseek", path: path, errno: errno) }
        try write(bytes, at: Int(end))
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try checkOpen("pwrite")
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        var position = offset
        while remaining > 0 {
            let written = pwrite(descriptor, next, remaining, off_t(position))
            if written < 0 {
                let error = errno
                if error == EINTR { continue }
                throw StorageError(operation: "pwrite", path: path, errno: error)
            }
            if written == 0 { throw StorageError(operation: "pwrite", path: path, errno: EIO) }
            next += written
            remaining -= written
            position += written
        }
    }

    func read(offset: Int, count: Int) throws -> [UInt8] {
        try checkOpen("pread")
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var total = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while total < count {
                let got = pread(descriptor, buffer.baseAddress! + total, count - total, off_t(offset + total))
                if got < 0 {
                    let error = errno
                    if error == EINTR { continue }
                    throw StorageError(operation: "pread", path: path, errno: error)
                }
                if got == 0 { break }
                total += got
            }
        }
        bytes.removeLast(count - total)
        return bytes
    }

    func size() throws -> Int {
        try checkOpen("fstat")
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw StorageError(operation: "fstat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    func truncate(to length: Int) throws {
        try checkOpen("ftruncate")
        while ftruncate(descriptor, off_t(length)) != 0 {
            let error = errno
            if error != EINTR { throw StorageError(operation: "ftruncate", path: path, errno: error) }
        }
    }

    func sync() throws {
        try checkOpen("fdatasync")
        while fdatasync(descriptor) != 0 {
            let error = errno
            if error != EINTR { throw StorageError(operation: "fdatasync", path: path, errno: error) }
        }
    }

    func close() throws {
        try checkOpen("close")
        let result = systemClose(descriptor)
        let error = errno
        descriptor = -1
        // Linux closes the descriptor even when close reports EINTR: never retry.
        if result != 0 && error != EINTR { throw StorageError(operation: "close", path: path, errno: error) }
    }
}
