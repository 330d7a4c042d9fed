import HeadcountCore
import XCTest

final class TimestampTests: XCTestCase {
    func testParseValid() {
        let base: Int64 = 1_747_807_200_000 // 2025-05-21T06:00:00Z
        let table: [(String, Int64)] = [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:00.000Z", 0),
            ("2025-05-21T06:00:00.000Z", base),
            ("2025-05-21T06:00:00Z", base),
            ("2025-05-21t06:00:00z", base),
            ("2025-05-21T08:00:00+02:00", base),
            ("2025-05-20T23:30:00-06:30", base),
            ("2025-05-21T06:00:00-00:00", base),
            ("2025-05-22T05:59:00+23:59", base),
            ("2025-05-21T06:00:00.5Z", base + 500),
            ("2025-05-21T06:00:00.0Z", base),
            ("2025-05-21T06:00:00.12Z", base + 120),
            ("2025-05-21T06:00:00.123Z", base + 123),
            ("2025-05-21T06:00:00.123456789Z", base + 123),
            ("2025-05-21T06:00:00.999999999Z", base + 999),
            ("2025-05-21T06:00:00.000000000+00:00", base),
            ("2025-05-21T07:00:00.0015+01:00", base + 1),
            ("1969-12-31T23:59:59.999Z", -1),
            ("1969-12-31T23:59:59.9999Z", -1),
            ("1969-12-31T23:59:59Z", -1000),
            ("2024-02-29T12:34:56.789Z", 1_709_210_096_789),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("1900-03-01T00:00:00Z", -2_203_891_200_000),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000),
            ("0000-01-01T00:00:00Z", -62_167_219_200_000),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        ]
        for (text, expected) in table {
            XCTAssertEqual(Timestamp.parseMilliseconds(text), expected, text)
        }
    }

    func testParseInvalid() {
        let table = [
            "", "2025", "2025-05-21", "2025-05-21T06:00:00", "2025-05-21T06:00:00.000",
            "2025-05-21 06:00:00Z", "2025-05-21T06:00Z", "2025-5-21T06:00:00Z",
            "2025/05/21T06:00:00Z", "+2025-05-21T06:00:00Z", " 2025-05-21T06:00:00Z",
            "2025-05-21T06:00:00Z ", "2025-05-21T06:00:00ZZ", "2025-05-21T06:00:00.Z",
            "2025-05-21T06:00:00.12aZ", "2025-05-21T06:00:00,123Z",
            "2025-00-10T00:00:00Z", "2025-13-10T00:00:00Z", "2025-01-00T00:00:00Z",
            "2025-01-32T00:00:00Z", "2025-04-31T00:00:00Z", "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2024-02-30T00:00:00Z",
            "2025-05-21T24:00:00Z", "2025-05-21T06:60:00Z", "2025-05-21T06:00:60Z",
            "2025-05-21T06:00:00+24:00", "2025-05-21T06:00:00+23:60", "2025-05-21T06:00:00+0200",
            "2025-05-21T06:00:00+02", "2025-05-21T06:00:00+02:00:00", "2025-05-21T06:00:00 +02:00",
            "2025-05-21T06:00:00UTC", "2025-05-21T0a:00:00Z", "२०२५-05-21T06:00:00Z",
            "2025-05-21T06:00:00.\u{0661}Z",
        ]
        for text in table {
            XCTAssertNil(Timestamp.parseMilliseconds(text), text)
        }
    }

    func testParseBytes() {
        let bytes = Array("xx2025-05-21T06:00:00.000Zyy".utf8)
        bytes.withUnsafeBytes { raw in
            XCTAssertEqual(Timestamp.parseMilliseconds(UnsafeRawBufferPointer(rebasing: raw[2..<26])),
                           1_747_807_200_000)
            XCTAssertNil(Timestamp.parseMilliseconds(UnsafeRawBufferPointer(rebasing: raw[2..<27])))
        }
    }

    func testFormat() {
        let table: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_747_807_200_000, "2025-05-21T06:00:00.000Z"),
            (1_747_807_200_007, "2025-05-21T06:00:00.007Z"),
            (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-1000, "1969-12-31T23:59:59.000Z"),
            (-86_400_001, "1969-12-30T23:59:59.999Z"),
            (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
        ]
        for (ms, expected) in table {
            XCTAssertEqual(Timestamp.format(milliseconds: ms), expected, "\(ms)")
            var buffer = Array("x".utf8)
            Timestamp.write(milliseconds: ms, into: &buffer)
            XCTAssertEqual(buffer, Array(("x" + expected).utf8), "\(ms)")
        }
        // Extremes do not trap.
        XCTAssertEqual(Timestamp.format(milliseconds: .max), "+292278994-08-17T07:12:55.807Z")
        XCTAssertEqual(Timestamp.format(milliseconds: .min), "-292275055-05-16T16:47:04.192Z")
    }

    func testRoundTripRandom() {
        var generator = SystemRandomNumberGenerator()
        let range: ClosedRange<Int64> = -62_167_219_200_000 ... 253_402_300_799_999
        for _ in 0 ..< 100_000 {
            let ms = Int64.random(in: range, using: &generator)
            let text = Timestamp.format(milliseconds: ms)
            XCTAssertEqual(text.utf8.count, 24)
            guard Timestamp.parseMilliseconds(text) == ms else {
                XCTFail("round trip \(ms) -> \(text) -> \(String(describing: Timestamp.parseMilliseconds(text)))")
                return
            }
        }
        // Every day boundary from 1900 to 2100, across the leap-year rules.
        var ms: Int64 = -2_208_988_800_000 // 1900-01-01
        while ms < 4_102_444_800_000 { // 2100-01-01
            let text = Timestamp.format(milliseconds: ms)
            XCTAssertEqual(Timestamp.parseMilliseconds(text), ms, text)
            ms += 86_400_000
        }
    }
}
