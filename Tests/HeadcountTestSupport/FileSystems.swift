import Foundation
/// Whether files in `directory` are on a file system known to take `O_DIRECT` writes (ext4,
/// XFS, btrfs), where the WAL must write through (`POSIXFileSystem.openFile(_:writesThrough:)`). On
/// another (tmpfs, overlay, …) writes may fall back to the page cache, and tests only check
/// the content.
public func isDirectIOFileSystem(_ directory: String) -> Bool {
    // The type of the longest mount point over the directory's real path, from /proc/mounts.
    guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8),
          let real = realpath(directory, nil) else { return false }
    let path = String(cString: real)
    free(real)
    var best = (point: "", type: "")
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let point = String(fields[1])
        let covers = point == "/" || path == point || path.hasPrefix(point + "/")
        if covers && point.count >= best.point.count { best = (point, String(fields[2])) }
    }
    return ["ext4", "ext3", "xfs", "btrfs"].contains(best.type)
}
