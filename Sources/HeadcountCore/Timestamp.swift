/// RFC 3339 timestamps <-> milliseconds since the Unix epoch (UTC).
///
/// Hand-rolled (no Foundation formatters) because it runs for every feed event and every
/// serialized time. Civil-date arithmetic after Howard Hinnant's `days_from_civil` /
/// `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html), valid for the
/// whole proleptic Gregorian calendar.
public enum Timestamp {
    /// RFC 3339: `YYYY-MM-DD('T'|'t')hh:mm:ss(.fraction)?('Z'|'z'|±hh:mm)`. The fraction may
    /// have any number of digits (at least one) and is truncated (floor) to milliseconds.
    /// Validates ranges (month, day incl. leap years, hour, minute, second 0–59, offset
    /// hours ≤ 23 and minutes ≤ 59). Returns milliseconds since the Unix epoch (UTC), or
    /// nil when the text is not such a timestamp.
    public static func parseMilliseconds(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        let n = bytes.count
        // Shortest form: 2025-05-21T06:00:00Z (20 bytes).
        guard n >= 20 else { return nil }
        let y1 = twoDigits(bytes, 0), y2 = twoDigits(bytes, 2)
        let month = twoDigits(bytes, 5), day = twoDigits(bytes, 8)
        let hour = twoDigits(bytes, 11), minute = twoDigits(bytes, 14), second = twoDigits(bytes, 17)
        let t = bytes[10]
        guard y1 >= 0, y2 >= 0, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              t == UInt8(ascii: "T") || t == UInt8(ascii: "t"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
              month >= 1, month <= 12, day >= 1, hour >= 0, hour <= 23,
              minute >= 0, minute <= 59, second >= 0, second <= 59
        else { return nil }
        let year = y1 &* 100 &+ y2
        guard day <= daysInMonth(year: year, month: month) else { return nil }

        var i = 19
        var fraction = 0
        if bytes[i] == UInt8(ascii: ".") {
            i &+= 1
            let start = i
            while i < n {
                let digit = Int(bytes[i]) &- 48
                if UInt(bitPattern: digit) > 9 { break }
                if i &- start < 3 { fraction = fraction &* 10 &+ digit }
                i &+= 1
            }
            let count = i &- start
            guard count > 0 else { return nil }
            if count == 1 { fraction &*= 100 } else if count == 2 { fraction &*= 10 }
        }
        guard i < n else { return nil }

        var offsetSeconds = 0
        let zone = bytes[i]
        if zone == UInt8(ascii: "Z") || zone == UInt8(ascii: "z") {
            i &+= 1
        } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-") {
            guard n &- i >= 6 else { return nil }
            let oh = twoDigits(bytes, i &+ 1), om = twoDigits(bytes, i &+ 4)
            guard bytes[i &+ 3] == UInt8(ascii: ":"), oh >= 0, oh <= 23, om >= 0, om <= 59 else { return nil }
            offsetSeconds = (oh &* 60 &+ om) &* 60
            if zone == UInt8(ascii: "-") { offsetSeconds = -offsetSeconds }
            i &+= 6
        } else {
            return nil
        }
        guard i == n else { return nil }

        let days = daysFromCivil(year: Int64(year), month: Int64(month), day: Int64(day))
        let seconds = days &* 86_400 &+ Int64(hour &* 3600 &+ minute &* 60 &+ second &- offsetSeconds)
        return seconds &* 1000 &+ Int64(fraction)
    }

    /// `parseMilliseconds` over the UTF-8 of `text`.
    public static func parseMilliseconds(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parseMilliseconds(UnsafeRawBufferPointer($0)) }
    }

    /// Always `2025-05-21T06:00:00.000Z`: UTC, 3 fraction digits; correct for dates before
    /// 1970 too. Years outside 0000–9999 (never produced by `parseMilliseconds`) are written
    /// ISO 8601-expanded, as JavaScript does: a sign and at least 6 digits (`-000001`,
    /// `+010000`).
    public static func format(milliseconds: Int64) -> String {
        String(unsafeUninitializedCapacity: maxLength) { buffer in
            fill(milliseconds, buffer.baseAddress!)
        }
    }

    /// Appends the bytes of `format(milliseconds:)` to `buffer`.
    public static func write(milliseconds: Int64, into buffer: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxLength) { scratch in
            let count = fill(milliseconds, scratch.baseAddress!)
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<count]))
        }
    }

    // MARK: - Civil calendar

    /// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12).
    @inline(__always)
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year &- 1 : year
        let era = (y >= 0 ? y : y &- 399) / 400
        let yoe = y &- era &* 400                                          // [0, 399]
        let mp = month > 2 ? month &- 3 : month &+ 9                       // [0, 11], March = 0
        let doy = (153 &* mp &+ 2) / 5 &+ day &- 1                          // [0, 365]
        let doe = yoe &* 365 &+ yoe / 4 &- yoe / 100 &+ doy                // [0, 146096]
        return era &* 146_097 &+ doe &- 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01.
    @inline(__always)
    static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days &+ 719_468
        let era = (z >= 0 ? z : z &- 146_096) / 146_097
        let doe = z &- era &* 146_097                                       // [0, 146096]
        let yoe = (doe &- doe / 1460 &+ doe / 36_524 &- doe / 146_096) / 365 // [0, 399]
        let doy = doe &- (365 &* yoe &+ yoe / 4 &- yoe / 100)               // [0, 365]
        let mp = (5 &* doy &+ 2) / 153                                      // [0, 11]
        let day = doy &- (153 &* mp &+ 2) / 5 &+ 1                          // [1, 31]
        let month = mp < 10 ? mp &+ 3 : mp &- 9                             // [1, 12]
        let year = yoe &+ era &* 400 &+ (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    @inline(__always)
    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2:
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            return leap ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // MARK: - Private

    /// Sign, 9 year digits (|year| ≤ 292,278,994 for Int64 milliseconds) and 20 more bytes.
    private static let maxLength = 32

    /// The value of two ASCII digits at `i`, or -1.
    @inline(__always)
    private static func twoDigits(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Int {
        let a = Int(bytes[i]) &- 48, b = Int(bytes[i &+ 1]) &- 48
        if UInt(bitPattern: a) > 9 || UInt(bitPattern: b) > 9 { return -1 }
        return a &* 10 &+ b
    }

    @inline(__always)
    private static func put2(_ value: Int64, _ out: UnsafeMutablePointer<UInt8>, _ i: inout Int) {
        out[i] = UInt8(truncatingIfNeeded: 48 &+ value / 10)
        out[i &+ 1] = UInt8(truncatingIfNeeded: 48 &+ value % 10)
        i &+= 2
    }

    /// Writes the formatted time at `out` (≥ maxLength bytes); returns the byte count.
    private static func fill(_ milliseconds: Int64, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        var days = milliseconds / 86_400_000
        var msOfDay = milliseconds % 86_400_000
        if msOfDay < 0 {
            msOfDay &+= 86_400_000
            days &-= 1
        }
        let (year, month, day) = civilFromDays(days)
        var i = 0
        if year >= 0 && year <= 9999 {
            put2(year / 100, out, &i)
            put2(year % 100, out, &i)
        } else {
            out[i] = year < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+")
            i &+= 1
            var magnitude = year.magnitude
            var digits = 0
            var reversed: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &reversed) { r in
                while magnitude > 0 || digits < 6 {
                    r[digits] = UInt8(truncatingIfNeeded: 48 &+ magnitude % 10)
                    magnitude /= 10
                    digits &+= 1
                }
                while digits > 0 {
                    digits &-= 1
                    out[i] = r[digits]
                    i &+= 1
                }
            }
        }
        out[i] = UInt8(ascii: "-"); i &+= 1
        put2(month, out, &i)
        out[i] = UInt8(ascii: "-"); i &+= 1
        put2(day, out, &i)
        out[i] = UInt8(ascii: "T"); i &+= 1
        let seconds = msOfDay / 1000
        put2(seconds / 3600, out, &i)
        out[i] = UInt8(ascii: ":"); i &+= 1
        put2(seconds / 60 % 60, out, &i)
        out[i] = UInt8(ascii: ":"); i &+= 1
        put2(seconds % 60, out, &i)
        out[i] = UInt8(ascii: "."); i &+= 1
        let ms = msOfDay % 1000
        out[i] = UInt8(truncatingIfNeeded: 48 &+ ms / 100); i &+= 1
        put2(ms % 100, out, &i)
        out[i] = UInt8(ascii: "Z"); i &+= 1
        return i
    }
}
