import HeadcountCore

/// An engine's snapshot bytes with its idempotency keys sorted: two engines that hold the
/// same state compare equal although their key tables (and so the keys' order in the
/// snapshot) differ in size and layout. For comparing a bulk replay with per-event apply.
public func canonicalSnapshot(_ engine: Engine) -> [UInt8] {
    canonicalSnapshot(bytes: engine.encodeSnapshot())
}

/// `canonicalSnapshot(_:)` of snapshot bytes already encoded (format v1: version byte,
/// sequence, then the LEB128 key count and 24-byte keys).
public func canonicalSnapshot(bytes snapshot: [UInt8]) -> [UInt8] {
    var offset = 9
    var keyCount = 0
    var shift = 0
    while true {
        let byte = snapshot[offset]
        offset += 1
        keyCount |= Int(byte & 0x7F) << shift
        shift += 7
        if byte < 0x80 { break }
    }
    let keys = (0..<keyCount).map { Array(snapshot[(offset + $0 * 24)..<(offset + $0 * 24 + 24)]) }
        .sorted { $0.lexicographicallyPrecedes($1) }
    return Array(snapshot[..<offset]) + keys.flatMap { $0 } + Array(snapshot[(offset + keyCount * 24)...])
}
