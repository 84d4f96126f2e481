/// `Codable` over Cairn's own ``JSON`` value, without Foundation: typed method parameters and
/// results are decoded from, and encoded to, the JSON the wire carries. A ``JSON`` field passes
/// through untouched (key order and exact numbers kept), so a parameter can carry events as
/// they came.
public enum JSONCoding {
    /// Decodes `type` from `value`.
    /// - Throws: ``JSONDecodingError`` naming the field and what it expected.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSON) throws(JSONDecodingError) -> T {
        do {
            return try ValueDecoder(value: value, codingPath: []).unbox(T.self)
        } catch let error as JSONDecodingError {
            throw error
        } catch {
            throw JSONDecodingError(path: [], expected: "a valid value", found: "\(error)")
        }
    }

    /// Encodes `value` as JSON. Optional fields that are nil are left out.
    public static func encode<T: Encodable>(_ value: T) -> JSON {
        let encoder = ValueEncoder(codingPath: [])
        do {
            try encoder.box(value)
        } catch {
            // Only a type's own `encode(to:)` can throw; Cairn's types do not.
            return .null
        }
        return encoder.result.json
    }

    /// The fields a `Decodable` type reads, in order, with their JSON types: what
    /// `docs/rpc.md` lists for each method. Found by decoding it from a recording decoder.
    public static func fields<T: Decodable>(of type: T.Type) -> [JSONFieldDescription] {
        let recorder = FieldRecorder()
        _ = try? T(from: RecordingDecoder(recorder: recorder))
        return recorder.fields
    }
}

/// A field of a typed parameter or result that does not hold what its type needs.
public struct JSONDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field's path, e.g. `["steps", "2"]`; empty for the value itself.
    public var path: [String]
    public var expected: String
    public var found: String

    public init(path: [String], expected: String, found: String) {
        self.path = path
        self.expected = expected
        self.found = found
    }

    /// The path written as `steps[2].name`.
    public var field: String {
        var text = ""
        for part in path {
            if let index = Int(part), !text.isEmpty { text += "[\(index)]" } else { text += text.isEmpty ? part : "." + part }
        }
        return text
    }

    public var description: String {
        path.isEmpty ? "expected \(expected), found \(found)" : "\(field): expected \(expected), found \(found)"
    }
}

/// One field of a typed parameter or result, for the generated method reference.
public struct JSONFieldDescription: Sendable, Equatable {
    public var name: String
    /// `string`, `integer`, `number`, `boolean`, `array of string`, `object`, `any JSON`, …
    public var type: String
    public var required: Bool

    public init(name: String, type: String, required: Bool) {
        self.name = name
        self.type = type
        self.required = required
    }
}

// MARK: - Decoding

private func describe(_ value: JSON) -> String {
    switch value {
    case .null: return "null"
    case .bool(let flag): return String(flag)
    case .int, .double, .number: return "the number \(value.serializedString())"
    case .string(let text): return text.utf8.count > 40 ? "a string" : "\"\(text)\""
    case .array: return "an array"
    case .object: return "an object"
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

private struct ValueDecoder: Decoder {
    let value: JSON
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func failure(_ expected: String) -> JSONDecodingError {
        JSONDecodingError(path: codingPath.map(\.stringValue), expected: expected, found: describe(value))
    }

    func unbox<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is JSON.Type: return value as! T
        case is String.Type:
            guard case .string(let text) = value else { throw failure("a string") }
            return text as! T
        case is Bool.Type:
            guard case .bool(let flag) = value else { throw failure("true or false") }
            return flag as! T
        case is Int64.Type:
            guard let number = value.intValue else { throw failure("an integer") }
            return number as! T
        case is Int.Type:
            guard let number = value.intValue, let int = Int(exactly: number) else { throw failure("an integer") }
            return int as! T
        case is Double.Type:
            guard let number = value.doubleValue, number.isFinite else { throw failure("a number") }
            return number as! T
        case is JSONObject.Type:
            guard case .object(let object) = value else { throw failure("an object") }
            return object as! T
        default:
            return try T(from: self)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw failure("an object") }
        return KeyedDecodingContainer(KeyedContainer<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw failure("an array") }
        return UnkeyedContainer(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [any CodingKey]

    var allKeys: [Key] { object.map(\.key).compactMap(Key.init(stringValue:)) }
    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }
    func decodeNil(forKey key: Key) throws -> Bool { (object[key.stringValue] ?? .null) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let path = codingPath + [key]
        guard let value = object[key.stringValue], value != .null else {
            throw JSONDecodingError(path: path.map(\.stringValue), expected: expectation(T.self), found: "nothing")
        }
        return try ValueDecoder(value: value, codingPath: path).unbox(T.self)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(false, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode("", key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(Double(0), key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(Int(0), key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(Int64(0), key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try decode(Double(0), key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try narrow(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try narrow(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try narrow(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try narrow(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try narrow(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try narrow(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try narrow(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try narrow(key) }

    /// The generic decode, picked by the type of `witness`.
    private func decode<T: Decodable>(_ witness: T, _ key: Key) throws -> T { try decode(T.self, forKey: key) }

    private func narrow<T: FixedWidthInteger>(_ key: Key) throws -> T {
        let wide = try decode(Int64.self, forKey: key)
        guard let value = T(exactly: wide) else {
            throw JSONDecodingError(path: (codingPath + [key]).map(\.stringValue), expected: "an integer that fits \(T.self)", found: String(wide))
        }
        return value
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { ValueDecoder(value: .object(object), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [JSON]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let path = codingPath + [AnyKey(intValue: currentIndex)]
        guard !isAtEnd else { throw JSONDecodingError(path: path.map(\.stringValue), expected: expectation(T.self), found: "the end of the array") }
        let value = try ValueDecoder(value: items[currentIndex], codingPath: path).unbox(T.self)
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let decoder = ValueDecoder(value: isAtEnd ? .null : items[currentIndex], codingPath: codingPath + [AnyKey(intValue: currentIndex)])
        currentIndex += 1
        return try decoder.container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let decoder = ValueDecoder(value: isAtEnd ? .null : items[currentIndex], codingPath: codingPath + [AnyKey(intValue: currentIndex)])
        currentIndex += 1
        return try decoder.unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = ValueDecoder(value: isAtEnd ? .null : items[currentIndex], codingPath: codingPath + [AnyKey(intValue: currentIndex)])
        currentIndex += 1
        return decoder
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    func decodeNil() -> Bool { decoder.value == .null }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.unbox(T.self) }
}

/// What a type needs, in words, for an error about a missing field.
private func expectation<T>(_ type: T.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is Int.Type, is Int64.Type: return "an integer"
    case is Double.Type: return "a number"
    default: return "a value"
    }
}

// MARK: - Encoding

/// The value an encoder builds; a class so nested containers can fill it in place.
private final class EncodedValue {
    enum Storage {
        case value(JSON)
        case object([(String, EncodedValue)])
        case array([EncodedValue])
    }

    var storage: Storage = .value(.null)

    var json: JSON {
        switch storage {
        case .value(let value): return value
        case .object(let fields):
            var object = JSONObject()
            for (key, value) in fields { object[key] = value.json }
            return .object(object)
        case .array(let items): return .array(items.map(\.json))
        }
    }

    func field(_ key: String) -> EncodedValue {
        let child = EncodedValue()
        if case .object(var fields) = storage {
            fields.append((key, child))
            storage = .object(fields)
        } else {
            storage = .object([(key, child)])
        }
        return child
    }

    func element() -> EncodedValue {
        let child = EncodedValue()
        if case .array(var items) = storage {
            items.append(child)
            storage = .array(items)
        } else {
            storage = .array([child])
        }
        return child
    }
}

private struct ValueEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let result: EncodedValue

    init(codingPath: [any CodingKey], into result: EncodedValue = EncodedValue()) {
        self.codingPath = codingPath
        self.result = result
    }

    func box<T: Encodable>(_ value: T) throws {
        switch value {
        case let json as JSON: result.storage = .value(json)
        case let object as JSONObject: result.storage = .value(.object(object))
        case let text as String: result.storage = .value(.string(text))
        case let flag as Bool: result.storage = .value(.bool(flag))
        case let number as Int: result.storage = .value(.int(Int64(number)))
        case let number as Int64: result.storage = .value(.int(number))
        case let number as Double: result.storage = .value(.double(number))
        default: try value.encode(to: self)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .value = result.storage { result.storage = .object([]) }
        return KeyedEncodingContainer(KeyedEncoder<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .value = result.storage { result.storage = .array([]) }
        return UnkeyedEncoder(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleEncoder(encoder: self) }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    func encodeNil(forKey key: Key) throws { encoder.result.field(key.stringValue).storage = .value(.null) }

    func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try ValueEncoder(codingPath: codingPath + [key], into: encoder.result.field(key.stringValue)).box(value)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(codingPath: codingPath + [key], into: encoder.result.field(key.stringValue)).container(keyedBy: keyType)
    }

    func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        ValueEncoder(codingPath: codingPath + [key], into: encoder.result.field(key.stringValue)).unkeyedContainer()
    }

    func superEncoder() -> any Encoder { encoder }
    func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(codingPath: codingPath + [key], into: encoder.result.field(key.stringValue))
    }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int {
        if case .array(let items) = encoder.result.storage { return items.count }
        return 0
    }

    private var nextPath: [any CodingKey] { codingPath + [AnyKey(intValue: count)] }

    mutating func encodeNil() throws { encoder.result.element().storage = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = nextPath
        try ValueEncoder(codingPath: path, into: encoder.result.element()).box(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        return ValueEncoder(codingPath: path, into: encoder.result.element()).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        return ValueEncoder(codingPath: path, into: encoder.result.element()).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return ValueEncoder(codingPath: path, into: encoder.result.element())
    }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    mutating func encodeNil() throws { encoder.result.storage = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.box(value) }
}

// MARK: - Field recording (for the generated reference)

private final class FieldRecorder {
    var fields: [JSONFieldDescription] = []
    var seen: Set<String> = []
    /// Keys asked about with `decodeNil` first: what `decodeIfPresent` does for an optional.
    var optional: Set<String> = []

    func record(_ name: String, _ type: String, required: Bool) {
        guard seen.insert(name).inserted else { return }
        fields.append(JSONFieldDescription(name: name, type: type, required: required))
    }
}

/// A decoder that answers every request with a placeholder, noting the fields asked for.
private struct RecordingDecoder: Decoder {
    let recorder: FieldRecorder
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RecordingContainer<Key>(recorder: recorder))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw JSONDecodingError(path: [], expected: "an object", found: "an array") }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw JSONDecodingError(path: [], expected: "an object", found: "a value")
    }
}

/// The JSON type name of a Swift type, and a placeholder value of it.
private func placeholder<T>(_ type: T.Type) -> (name: String, value: JSON) {
    switch type {
    case is String.Type: return ("string", .string(""))
    case is Bool.Type: return ("boolean", .bool(false))
    case is Int.Type, is Int64.Type: return ("integer", .int(0))
    case is Double.Type: return ("number", .double(0))
    case is JSON.Type: return ("any JSON", .null)
    case is JSONObject.Type: return ("object", .object(JSONObject()))
    case is [String].Type: return ("array of strings", .array([]))
    case is [JSON].Type: return ("array", .array([]))
    case is [Int].Type, is [Int64].Type: return ("array of integers", .array([]))
    case let described as any JSONDescribed.Type: return (described.jsonTypeName, described.placeholderJSON)
    default: return ("object", .object(JSONObject()))
    }
}

/// A type that names itself in the generated reference (an enumeration lists its values).
public protocol JSONDescribed {
    static var jsonTypeName: String { get }
    static var placeholderJSON: JSON { get }
}

extension JSONDescribed where Self: RawRepresentable & CaseIterable, RawValue == String {
    public static var jsonTypeName: String { "one of " + allCases.map { "`\($0.rawValue)`" }.joined(separator: ", ") }
    public static var placeholderJSON: JSON { .string(allCases.first?.rawValue ?? "") }
}

private struct RecordingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let recorder: FieldRecorder
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool {
        true
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        recorder.optional.insert(key.stringValue)
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let described = placeholder(T.self)
        recorder.record(key.stringValue, described.name, required: !recorder.optional.contains(key.stringValue))
        return try ValueDecoder(value: described.value, codingPath: [key]).unbox(T.self)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        let described = placeholder(T.self)
        recorder.record(key.stringValue, described.name, required: false)
        return try? ValueDecoder(value: described.value, codingPath: [key]).unbox(T.self)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(false, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode("", key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(Double(0), key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(Int(0), key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(Int64(0), key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { 0 }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { 0 }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { 0 }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { 0 }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { 0 }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { 0 }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { 0 }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { 0 }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { 0 }

    private func decode<T: Decodable>(_ witness: T, _ key: Key) throws -> T { try decode(T.self, forKey: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(RecordingContainer<NestedKey>(recorder: FieldRecorder()))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { UnkeyedContainer(items: [], codingPath: [key]) }
    func superDecoder() throws -> any Decoder { RecordingDecoder(recorder: recorder) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RecordingDecoder(recorder: FieldRecorder()) }
}

extension JSON: Codable {
    public init(from decoder: any Decoder) throws {
        // Cairn's own decoder hands the value over whole; any other decoder gets the plain forms.
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Int64.self) {
            self = .int(number)
        } else if let number = try? container.decode(Double.self) {
            self = .double(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSON].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode(JSONObject.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .int(let number): try container.encode(number)
        case .double(let number): try container.encode(number)
        case .number(let digits): try container.encode(Double(digits) ?? 0)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let object): try container.encode(object)
        }
    }
}

extension JSONObject: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        var object = JSONObject()
        for key in container.allKeys { object[key.stringValue] = try container.decode(JSON.self, forKey: key) }
        self = object
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        for (key, value) in self { try container.encode(value, forKey: AnyKey(stringValue: key)) }
    }
}
