import CairnCore
import Testing

@Suite struct JSONTests {
    /// A number is never silently changed: digits a Double cannot hold stay as written, and
    /// what PostgreSQL's numeric cannot hold is refused.
    @Test func numbersKeepEveryDigitOrAreRefused() throws {
        #expect(try JSONParser.parse(Array("12345678901234567890.5".utf8)) == .number("12345678901234567890.5"))
        #expect(try JSONParser.parse(Array("12345678901234567890.5".utf8)) != JSONParser.parse(Array("12345678901234567890.7".utf8)))
        #expect(try JSONParser.parse(Array("0.1e-400".utf8)) == .number("0.1e-400"))
        #expect(try JSONParser.parse(Array("1.5".utf8)) == .double(1.5))
        #expect(try JSONParser.parse(Array("1e20".utf8)) == .double(1e20))
        #expect(JSON.number("12345678901234567890.5").serializedString() == "12345678901234567890.5")
        for bad in ["1e400", "1e-20000", "-1E999999"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONParser.parse(Array(bad.utf8)) }
        }
    }

    /// Keys are told apart by their bytes: a precomposed é and e with a combining accent are two
    /// keys, as they are to PostgreSQL and JavaScript.
    @Test func keysThatLookAlikeStayApart() throws {
        let object = try #require(try JSONParser.parse(Array(#"{"caf\u00e9":"nfc","cafe\u0301":"nfd","K":1,"\u212a":2}"#.utf8)).objectValue)
        #expect(object.count == 4)
        #expect(object["caf\u{e9}"] == "nfc")
        #expect(object["cafe\u{301}"] == "nfd")
        #expect(JSON.string("caf\u{e9}") != JSON.string("cafe\u{301}"))
    }

    @Test func parsesAndWritesEveryKind() throws {
        let text =
            #"{"s":"a\"b\\c\n\u00e9\ud83d\ude00","i":-42,"big":12345678901234567890,"d":1.5e3,"t":true,"f":false,"n":null,"a":[1,[2,{}]],"o":{"k":"v"}}"#
        let value = try JSONParser.parse(text)
        #expect(value["s"]?.stringValue == "a\"b\\c\né😀")
        #expect(value["i"] == .int(-42))
        #expect(value["big"]?.doubleValue == 12345678901234567890.0)
        #expect(value["d"] == .double(1500))
        #expect(value["t"] == .bool(true))
        #expect(value["n"] == .null)
        #expect(value["a"]?.arrayValue?.count == 2)
        #expect(try JSONParser.parse(value.serializedString()) == value)
    }

    @Test func keepsKeyOrderAndLastDuplicateWins() throws {
        let value = try JSONParser.parse(#"{"b":1,"a":2,"b":3}"#)
        #expect(value.objectValue?.keys == ["b", "a"])
        #expect(value["b"] == .int(3))
        #expect(value.serializedString() == #"{"b":3,"a":2}"#)
    }

    /// Past a few keys, repeats are found through a hash (a hostile record of thousands of keys
    /// stays linear): the same answer as the scan, look-alike keys still apart.
    @Test func wideObjectsKeepKeyOrderAndLastDuplicateWins() throws {
        var text = (0..<100).map { #""k\#($0)":\#($0)"# }
        text += [#""k7":"again""#, #""caf\u00e9":"nfc""#, #""cafe\u0301":"nfd""#, #""k99":null"#, #""caf\u00e9":"nfc2""#]
        let object = try #require(try JSONParser.parse("{" + text.joined(separator: ",") + "}").objectValue)
        #expect(object.count == 102)
        #expect(Array(object.keys.prefix(3)) == ["k0", "k1", "k2"])
        #expect(object["k7"] == "again")
        #expect(object.keys[7] == "k7")
        #expect(object["k99"] == .null)
        #expect(object["caf\u{e9}"] == "nfc2")
        #expect(object["cafe\u{301}"] == "nfd")
        // A merge of two wide objects: the other's values win, its new keys come last.
        var merged = object
        merged.merge(JSONObject(pairs: (95..<140).map { (key: "k\($0)", value: JSON.int(Int64(-$0))) })) { $0 != .int(-120) }
        #expect(merged.count == 102 + 39)
        #expect(merged["k96"] == .int(-96))
        #expect(merged["k120"] == nil)
        #expect(merged.keys.last == "k139")
        #expect(merged["cafe\u{301}"] == "nfd")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":}", "NaN", "Infinity", "-Infinity", "01", "1.", "1e", "\"abc", "{\"a\" 1}",
        "[1] x", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"", "tru", "nul", "{'a':1}", "1e999",
    ])
    func refusesInvalidDocuments(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test func capsNestingDepth() throws {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(try JSONParser.parse(fine).arrayValue != nil)
    }

    @Test func errorNamesTheOffset() {
        do {
            _ = try JSONParser.parse(#"{"a":1,"b":x}"#)
            Issue.record("expected a parse error")
        } catch {
            #expect(error.offset == 11)
        }
    }

    @Test func escapesControlCharactersWhenWriting() {
        let value: JSON = ["k": .string("tab\there\u{01}")]
        #expect(value.serializedString() == #"{"k":"tab\there\u0001"}"#)
    }

    /// Size limits are checked without serialising: the count must match the bytes exactly.
    @Test func countsSerializedBytesExactly() throws {
        let values: [JSON] = [
            .null, true, false, 0, -42, 3.5, 1e21, 2.0, "", "plain", "quote \" back \\ nl \n cr \r tab \t ctl \u{01}\u{1F}", "ünïcødé ✓ 🎉",
            ["a": [1, 2, ["b": .null]], "": "x", "é": [], "o": [:]],
            .array((0..<50).map { .string(String(repeating: "x", count: $0)) }),
        ]
        for value in values {
            #expect(value.serializedByteCount == value.serialized().count, "\(value.serializedString())")
        }
        let text = #"{"a":"x\"y\\z\u0000","b":[1,2.5,true,null,{"c":"\n"}]}"#
        let parsed = try JSONParser.parse(Array(text.utf8))
        #expect(parsed.serializedByteCount == parsed.serialized().count)
        #expect(parsed.serializedString() == #"{"a":"x\"y\\z\u0000","b":[1,2.5,true,null,{"c":"\n"}]}"#)
    }
}
