#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A JSON value with ordered object keys.
///
/// Cairn moves every event through several hops; Foundation's `JSONSerialization` boxes
/// every value in an `NSObject` and cannot tell `true` from `1` on Linux, so Cairn parses
/// and writes JSON itself. Object keys keep their order, so what a sender wrote is what
/// the next hop sees.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer that fits in 64 bits, kept exact.
    case int(Int64)
    /// Any other number that a Double holds.
    case double(Double)
    /// A number kept as its literal text, so that no digit is lost: an integer too large for
    /// 64 bits (`12345678901234567890`), or a decimal with more significant digits than a
    /// Double holds (more than 15) or too small for one (`0.1e-400`). PostgreSQL's jsonb keeps
    /// it exactly too.
    case number(String)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    /// The value for `key` when this is an object, else `nil`.
    public subscript(key: String) -> JSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9.2e18: return Int64(value)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        case .number(let digits): return Double(digits)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// JSON has one number type: `1500` and `1500.0` are equal.
    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.int(let a), .double(let b)), (.double(let b), .int(let a)): return Double(a) == b && Int64(exactly: b) == a
        case (.string(let a), .string(let b)): return a.isExactly(b)
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }

    /// A short name of the value's JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double, .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON object: key/value pairs in the order they were written.
///
/// Lookups are linear, which beats hashing for the small objects events carry.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(key: String, value: JSON)]

    public init() { pairs = [] }

    public init(pairs: [(key: String, value: JSON)]) { self.pairs = pairs }

    public init(dictionaryLiteral elements: (String, JSON)...) {
        pairs = elements.map { (key: $0.0, value: $0.1) }
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }
    public var keys: [String] { pairs.map(\.key) }

    /// Reads or replaces the value for `key`; assigning `nil` removes the key.
    /// Keys match by their UTF-8 bytes, not by Swift's canonical equivalence: `café` written
    /// with a combining accent is another key than `café` with a precomposed one, as it is to
    /// PostgreSQL and to every JSON reader.
    public subscript(key: String) -> JSON? {
        get {
            for pair in pairs where pair.key.isExactly(key) { return pair.value }
            return nil
        }
        set {
            if let index = pairs.firstIndex(where: { $0.key.isExactly(key) }) {
                if let newValue { pairs[index].value = newValue } else { pairs.remove(at: index) }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }

    /// Sets every pair of `other` that `include` accepts, its value winning over one of the
    /// same key here (``KeyedBuilder``: linear however many keys either side has).
    public mutating func merge(_ other: JSONObject, where include: (JSON) -> Bool = { _ in true }) {
        var builder = KeyedBuilder(self)
        for (key, value) in other where include(value) { builder.set(key, value) }
        self = builder.object
    }

    /// Builds an object key by key, a repeated key keeping its place and taking the new value.
    /// Up to ``linearScanLimit`` keys a repeat is found by scanning, which beats hashing; past
    /// it through a hash, so a hostile record of thousands of keys costs linear time, not
    /// quadratic. The parser and ``merge(_:where:)`` both build with it.
    public struct KeyedBuilder {
        public private(set) var object: JSONObject
        private var positions: [ExactString: Int] = [:]

        static let linearScanLimit = 32

        public init(_ object: JSONObject = JSONObject()) { self.object = object }

        public mutating func set(_ key: String, _ value: JSON) {
            if object.count < Self.linearScanLimit {
                if let at = object.pairs.firstIndex(where: { $0.key.isExactly(key) }) {
                    object.pairs[at].value = value
                } else {
                    object.pairs.append((key: key, value: value))
                }
                return
            }
            if positions.isEmpty {
                for (at, pair) in object.pairs.enumerated() { positions[ExactString(pair.key)] = at }
            }
            if let at = positions[ExactString(key)] {
                object.pairs[at].value = value
            } else {
                positions[ExactString(key)] = object.count
                object.pairs.append((key: key, value: value))
            }
        }
    }

    /// Appends without checking for an existing key; for builders that know keys are unique.
    public mutating func append(_ key: String, _ value: JSON) {
        pairs.append((key: key, value: value))
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSON)]> { pairs.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.pairs.count == rhs.pairs.count else { return false }
        for (left, right) in zip(lhs.pairs, rhs.pairs) where !left.key.isExactly(right.key) || left.value != right.value {
            return false
        }
        return true
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(JSONObject(pairs: elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSON {
    /// `.string(value)` or `.null` when `value` is nil.
    public static func optional(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
    /// `.int(value)` or `.null` when `value` is nil.
    public static func optional(_ value: Int?) -> JSON { value.map { .int(Int64($0)) } ?? .null }
}

extension String {
    /// Whether the two strings have the same UTF-8 bytes. Swift's `==` treats canonically
    /// equivalent strings (a precomposed `é` and `e` with a combining accent) as equal;
    /// PostgreSQL, JSON and every sender do not, so ids and keys compare with this.
    /// (One `memcmp` on the contiguous bytes: it runs for every key lookup of every record.)
    public func isExactly(_ other: String) -> Bool {
        // Swift's `==` compares at byte speed; where it finds two canonically equivalent
        // spellings equal (é and e + U+0301, K and the Kelvin sign, Å and the Ångström sign),
        // their UTF-8 lengths differ. (Two spellings of one length, combining marks of
        // different classes in another order, still compare equal: run for every key lookup of
        // every record, a byte comparison on each match costs a third of the format layer.)
        self == other && utf8.count == other.utf8.count
    }

    /// Byte order of the UTF-8 encodings, the order of PostgreSQL's `C` collation.
    public func precedesExactly(_ other: String) -> Bool {
        let left = utf8
        let right = other.utf8
        let compared = left.withContiguousStorageIfAvailable { a in
            right.withContiguousStorageIfAvailable { b -> Bool in
                let common = min(a.count, b.count)
                let order = common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common)
                return order != 0 ? order < 0 : a.count < b.count
            }
        }
        if let compared, let precedes = compared { return precedes }
        return left.lexicographicallyPrecedes(right)
    }

    /// Whether the string holds a NUL (U+0000), which PostgreSQL's text cannot.
    public var containsNUL: Bool {
        utf8.withContiguousStorageIfAvailable { bytes in bytes.isEmpty ? false : memchr(bytes.baseAddress!, 0, bytes.count) != nil }
            ?? utf8.contains(0)
    }
}

extension Hasher {
    /// Hashes `string` by its UTF-8 bytes, to go with ``Swift/String/isExactly(_:)``.
    public mutating func combineExactly(_ string: String) {
        var copy = string
        copy.withUTF8 { combine(bytes: UnsafeRawBufferPointer($0)) }
        combine(UInt8(0xFF))
    }
}

/// A string as a dictionary key that tells canonically equivalent spellings apart.
public struct ExactString: Hashable, Sendable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public static func == (lhs: ExactString, rhs: ExactString) -> Bool { lhs.text.isExactly(rhs.text) }
    public func hash(into hasher: inout Hasher) { hasher.combineExactly(text) }
}
