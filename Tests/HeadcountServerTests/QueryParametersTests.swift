import Foundation
import XCTest
import HeadcountCore
@testable import HeadcountServer
import HeadcountTestSupport

/// The query-string reader of the statistics and status-change routes: split on the bytes `&`
/// and `=`, percent-decoded, `+` as a space, nil for a bad escape or bytes that are not UTF-8.
final class QueryParametersTests: XCTestCase {
    private func pairs(_ query: String) -> [String]? {
        QueryParameters(query)?.pairs.map { "\($0.name)=\($0.value)" }
    }

    func testPairsAreDecodedInOrder() {
        XCTAssertEqual(pairs("eventIds=E1&eventIds=E%202&dateTime=2025-05-21T06%3A00%3A00.000Z"),
                       ["eventIds=E1", "eventIds=E 2", "dateTime=2025-05-21T06:00:00.000Z"])
        XCTAssertEqual(pairs("a=b+c&d=%2B&e"), ["a=b c", "d=+", "e="])
        XCTAssertEqual(pairs("a=1=2&=x"), ["a=1=2", "=x"], "only the first = splits; an empty name is kept")
        XCTAssertEqual(pairs("&&a=1&&"), ["a=1"], "empty parts are skipped")
        XCTAssertEqual(pairs(""), [])
        XCTAssertEqual(pairs("name=%C3%A9v%C3%A9nement"), ["name=événement"])
        XCTAssertEqual(pairs("name=événement"), ["name=événement"], "raw UTF-8 passes through")
    }

    func testBadEscapesAndBadUTF8AreRejected() {
        XCTAssertNil(pairs("a=%"))
        XCTAssertNil(pairs("a=%4"))
        XCTAssertNil(pairs("a=%zz&b=1"))
        XCTAssertNil(pairs("a=1&b=%FF"), "a lone 0xFF is not UTF-8")
        XCTAssertNil(pairs("%C3=1"), "a cut UTF-8 sequence in a name")
        XCTAssertNil(pairs("a=%C3%28"))
    }

    func testValuesAndFirst() throws {
        let parameters = try XCTUnwrap(QueryParameters("eventIds=A&x=1&eventIds=B&x=2"))
        XCTAssertEqual(parameters.values("eventIds"), ["A", "B"])
        XCTAssertEqual(parameters.first("x"), "1")
        XCTAssertNil(parameters.first("missing"))
        XCTAssertEqual(parameters.values("missing"), [])
    }

    func testPathSegmentsKeepPlusAndDecodeSlashes() {
        XCTAssertEqual(QueryParameters.percentDecode("A-1+B%2FC"[...], plusAsSpace: false), "A-1+B/C")
        XCTAssertEqual(QueryParameters.percentDecode("A-1+B", plusAsSpace: true), "A-1 B")
        XCTAssertNil(QueryParameters.percentDecode("A%2", plusAsSpace: false))
    }

    /// Random queries from a small alphabet of bytes and escapes, against a reference that
    /// splits and decodes the obvious way. Replay with HEADCOUNT_TEST_SEED.
    func testRandomQueriesMatchAReferenceDecoder() {
        var random = SplitMix64(seed: testSeed("QueryParametersTests"))
        let pieces = ["a", "Z", "0", "=", "&", "+", "%", "%2", "%20", "%3D", "%26", "%2B", "%C3", "%A9", "%FF", "%zz", "é", "-", "."]
        for _ in 0..<5_000 {
            let query = (0..<random.below(12)).map { _ in pieces[random.below(pieces.count)] }.joined()
            XCTAssertEqual(pairs(query), referencePairs(query), "query \(query)")
        }
    }

    private func referencePairs(_ query: String) -> [String]? {
        func decode(_ bytes: ArraySlice<UInt8>) -> String? {
            var out: [UInt8] = []
            var index = bytes.startIndex
            while index < bytes.endIndex {
                let byte = bytes[index]
                if byte == UInt8(ascii: "%") {
                    let hex = Array("0123456789abcdef0123456789ABCDEF".utf8)
                    guard index + 2 < bytes.endIndex,
                          let high = hex.firstIndex(of: bytes[index + 1]), let low = hex.firstIndex(of: bytes[index + 2])
                    else { return nil }
                    out.append(UInt8(high % 16 * 16 + low % 16))
                    index += 3
                } else {
                    out.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                    index += 1
                }
            }
            return String(validating: out, as: UTF8.self)
        }
        var result: [String] = []
        for part in Array(query.utf8).split(separator: UInt8(ascii: "&")) {
            let name: ArraySlice<UInt8>, value: ArraySlice<UInt8>
            if let equals = part.firstIndex(of: UInt8(ascii: "=")) {
                name = part[..<equals]
                value = part[(equals + 1)...]
            } else {
                name = part
                value = []
            }
            guard let decodedName = decode(name), let decodedValue = decode(value) else { return nil }
            result.append("\(decodedName)=\(decodedValue)")
        }
        return result
    }
}
