// The one error shape of SPEC §6, for every endpoint and every status:
// {"status":404,"messages":["..."],"errors":[{"code":"...","message":"..."}],"warnings":[],"requestId":"..."}

enum ErrorResponse {
    static func make(status: Int, code: String, message: String, requestId: String) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json")],
            body: body(status: status, code: code, message: message, requestId: requestId))
    }

    static func body(status: Int, code: String, message: String, requestId: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + 2 * message.utf8.count + code.utf8.count + requestId.utf8.count)
        out.append(contentsOf: #"{"status":"#.utf8)
        out.append(contentsOf: String(status).utf8)
        out.append(contentsOf: #","messages":["#.utf8)
        JSONString.append(message, to: &out)
        out.append(contentsOf: #"],"errors":[{"code":"#.utf8)
        JSONString.append(code, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONString.append(message, to: &out)
        out.append(contentsOf: #"}],"warnings":[],"requestId":"#.utf8)
        JSONString.append(requestId, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// A tiny, correct JSON string writer (RFC 8259 §7). Swift strings are valid Unicode, so their UTF-8 passes
/// through unchanged except for '"', '\' and the control characters U+0000...U+001F.
extension ErrorResponse {
    enum JSONString {
        static func append(_ string: String, to out: inout [UInt8]) {
            out.append(UInt8(ascii: "\""))
            for byte in string.utf8 {
                switch byte {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
                case 0x00..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: "\\u00".utf8)
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 0x0F)])
                default:
                    out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }

        static func quoted(_ string: String) -> String {
            var out: [UInt8] = []
            append(string, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }
}
