import Foundation
import XCTest
@testable import HeadcountCore

final class JSONWriterTests: XCTestCase {
    private func text(_ writer: JSONWriter) -> String {
        String(decoding: writer.bytes, as: UTF8.self)
    }

    private func parse(_ writer: JSONWriter, file: StaticString = #filePath, line: UInt = #line) -> Any? {
        do {
            return try JSONSerialization.jsonObject(with: Data(writer.bytes), options: [.fragmentsAllowed])
        } catch {
            XCTFail("not valid JSON: \(text(writer)) (\(error))", file: file, line: line)
            return nil
        }
    }

    func testCommasAndNesting() {
        var w = JSONWriter()
        w.beginObject()
        w.key("a"); w.int(1)
        w.key("b"); w.beginArray(); w.int(1); w.beginObject(); w.endObject(); w.beginArray(); w.endArray(); w.null(); w.endArray()
        w.key("c"); w.beginObject(); w.key("d"); w.bool(true); w.key("e"); w.bool(false); w.endObject()
        w.key("f"); w.string("x")
        w.key("g"); w.raw("{\"h\":[1,2]}")
        w.key("i"); w.beginArray(); w.endArray()
        w.endObject()
        XCTAssertEqual(text(w), #"{"a":1,"b":[1,{},[],null],"c":{"d":true,"e":false},"f":"x","g":{"h":[1,2]},"i":[]}"#)
        XCTAssertNotNil(parse(w))
    }

    func testTopLevelArrayOfObjects() {
        var w = JSONWriter(capacity: 4)
        w.beginArray()
        for i in 0..<3 {
            w.beginObject(); w.key("n"); w.int(Int64(i)); w.endObject()
        }
        w.endArray()
        XCTAssertEqual(text(w), #"[{"n":0},{"n":1},{"n":2}]"#)
    }

    func testIntegers() {
        let values: [Int64] = [0, 1, 9, 10, -1, -9, -10, 123_456_789, .max, .min, 1_000_000_000_000]
        var w = JSONWriter()
        w.beginArray()
        for value in values { w.int(value) }
        w.endArray()
        XCTAssertEqual(text(w), "[" + values.map(String.init).joined(separator: ",") + "]")
    }

    func testEscaping() {
        var w = JSONWriter()
        w.string("q\"b\\s/\n\r\t\u{08}\u{0C}\u{00}\u{01}\u{1F}\u{7F}é€😀")
        XCTAssertEqual(text(w), "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0000\\u0001\\u001f\u{7F}é€😀\"")
        XCTAssertEqual(parse(w) as? String, "q\"b\\s/\n\r\t\u{08}\u{0C}\u{00}\u{01}\u{1F}\u{7F}é€😀")
    }

    func testKeysAreEscaped() {
        var w = JSONWriter()
        w.beginObject(); w.key("a\"b\n"); w.int(1); w.endObject()
        XCTAssertEqual(text(w), "{\"a\\\"b\\n\":1}")
        XCTAssertEqual((parse(w) as? [String: Any])?["a\"b\n"] as? Int, 1)
    }

    func testUTF8BytesValidated() {
        func write(_ bytes: [UInt8]) -> JSONWriter {
            var w = JSONWriter()
            bytes.withUnsafeBytes { w.string(utf8: $0) }
            return w
        }
        XCTAssertEqual(text(write(Array("abc é 😀".utf8))), "\"abc é 😀\"")
        // Invalid: lone continuation, truncated sequence, overlong, surrogate, > U+10FFFF, 0xFF.
        let cases: [([UInt8], String)] = [
            ([0x61, 0x80, 0x62], "a\u{FFFD}b"),
            ([0x61, 0xE2, 0x82], "a\u{FFFD}\u{FFFD}"),
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xFF, 0x22, 0x0A], "\u{FFFD}\"\n"),
        ]
        for (bytes, expected) in cases {
            let w = write(bytes)
            XCTAssertNotNil(String(validatingUTF8: w.bytes.map { CChar(bitPattern: $0) } + [0]), "\(bytes)")
            XCTAssertEqual(parse(w) as? String, expected, "\(bytes)")
        }
    }

    func testRawUTF8AndKeysAfterContainers() {
        var w = JSONWriter()
        w.beginObject()
        w.key("a"); w.beginObject(); w.endObject()
        Array("[true]".utf8).withUnsafeBytes { raw in
            w.key("b"); w.raw(utf8: raw)
        }
        w.key("c"); w.beginArray(); w.string("x"); w.endArray()
        w.key("d"); w.int(-5)
        w.endObject()
        XCTAssertEqual(text(w), #"{"a":{},"b":[true],"c":["x"],"d":-5}"#)
    }

    func testRandomRoundTrip() {
        var seed = UInt64(Date().timeIntervalSince1970 * 1000)
        print("JSONWriterTests.testRandomRoundTrip seed \(seed)")
        func next() -> UInt64 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return seed >> 33
        }
        func randomString() -> String {
            let alphabet: [Character] = ["a", "Z", "\"", "\\", "\n", "\u{0}", "\u{1F}", "é", "€", "😀", " ", "/", "\u{2028}"]
            return String((0..<Int(next() % 12)).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] })
        }
        indirect enum Value {
            case int(Int64), string(String), bool(Bool), null, array([Value]), object([String: Value])
        }
        func value(_ depth: Int, _ w: inout JSONWriter) -> Value {
            switch next() % (depth > 3 ? 4 : 6) {
            case 0:
                let v = Int64(bitPattern: next() &* next()) >> 11  // within ±2^53: exact as a Double too
                w.int(v)
                return .int(v)
            case 1: let s = randomString(); w.string(s); return .string(s)
            case 2: let b = next() % 2 == 0; w.bool(b); return .bool(b)
            case 3: w.null(); return .null
            case 4:
                w.beginArray()
                var array: [Value] = []
                for _ in 0..<Int(next() % 4) { array.append(value(depth + 1, &w)) }
                w.endArray()
                return .array(array)
            default:
                w.beginObject()
                var object: [String: Value] = [:]
                for i in 0..<Int(next() % 4) {
                    let key = randomString() + "#\(i)"
                    w.key(key)
                    object[key] = value(depth + 1, &w)
                }
                w.endObject()
                return .object(object)
            }
        }
        func same(_ expected: Value, _ parsed: Any) -> Bool {
            switch expected {
            case .int(let v):
                if let n = parsed as? NSNumber { return n.int64Value == v || n.doubleValue == Double(v) }
                return (parsed as? Int).map { Int64($0) == v } ?? false
            case .string(let s): return parsed as? String == s
            case .bool(let b): return parsed as? Bool == b
            case .null: return parsed is NSNull
            case .array(let a):
                guard let p = parsed as? [Any], p.count == a.count else { return false }
                return zip(a, p).allSatisfy { same($0, $1) }
            case .object(let o):
                guard let p = parsed as? [String: Any], p.count == o.count else { return false }
                return o.allSatisfy { key, v in p[key].map { same(v, $0) } ?? false }
            }
        }
        for _ in 0..<300 {
            var w = JSONWriter()
            let expected = value(0, &w)
            guard let parsed = parse(w) else { return }
            XCTAssertTrue(same(expected, parsed), text(w))
        }
    }
}
