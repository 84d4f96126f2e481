/// A UTC instant with microsecond precision: the resolution of `inserted_at` and of
/// PostgreSQL's `timestamptz`.
///
/// Parsing and formatting are done by hand (civil-from-days arithmetic) because they run
/// for every event on the ingest path and Foundation's formatters are slow and locale-bound.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    /// The current time from the system's real-time clock.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microseconds: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form Userpilot's event schema's key uses for `internal_event_id`.
    public var description: String { format(fractionDigits: 6) }

    /// ISO-8601 UTC with milliseconds (`…SS.sssZ`), the form Segment expects.
    public var iso8601Milliseconds: String { format(fractionDigits: 3) }

    /// Formats in UTC with the given number of fraction digits (0, 3 or 6).
    public func format(fractionDigits: Int) -> String {
        let (days, microsOfDay) = floorDivide(microseconds, 86_400_000_000)
        let (year, month, day) = Self.civil(fromDays: days)
        let seconds = microsOfDay / 1_000_000
        let micros = microsOfDay % 1_000_000
        var out = [UInt8]()
        out.reserveCapacity(27)
        appendPadded(&out, year, width: 4)
        out.append(UInt8(ascii: "-"))
        appendPadded(&out, month, width: 2)
        out.append(UInt8(ascii: "-"))
        appendPadded(&out, day, width: 2)
        out.append(UInt8(ascii: "T"))
        appendPadded(&out, seconds / 3600, width: 2)
        out.append(UInt8(ascii: ":"))
        appendPadded(&out, (seconds / 60) % 60, width: 2)
        out.append(UInt8(ascii: ":"))
        appendPadded(&out, seconds % 60, width: 2)
        if fractionDigits == 6 {
            out.append(UInt8(ascii: "."))
            appendPadded(&out, micros, width: 6)
        } else if fractionDigits == 3 {
            out.append(UInt8(ascii: "."))
            appendPadded(&out, micros / 1000, width: 3)
        }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The calendar date and time fields in UTC.
    public var utcComponents: (year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) {
        let (days, microsOfDay) = floorDivide(microseconds, 86_400_000_000)
        let (year, month, day) = Self.civil(fromDays: days)
        let seconds = microsOfDay / 1_000_000
        return (year, month, day, seconds / 3600, (seconds / 60) % 60, seconds % 60)
    }

    /// The start of the UTC calendar month this instant falls in, and of the next one.
    public var utcMonthBounds: (start: Timestamp, end: Timestamp) {
        let parts = utcComponents
        let start = Timestamp(year: parts.year, month: parts.month, day: 1)
        let end = parts.month == 12 ? Timestamp(year: parts.year + 1, month: 1, day: 1) : Timestamp(year: parts.year, month: parts.month + 1, day: 1)
        return (start, end)
    }

    /// Midnight UTC of a calendar date.
    public init(year: Int64, month: Int64, day: Int64, hour: Int64 = 0, minute: Int64 = 0, second: Int64 = 0, microsecond: Int64 = 0) {
        let days = Self.days(fromCivil: year, month, day)
        microseconds = ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + microsecond
    }

    /// Parses RFC 3339 / ISO-8601 date-times with any fraction precision (kept to the
    /// microsecond, extra digits truncated) and any offset. A space may stand for `T`, and a
    /// time without an offset is taken as UTC, as database exports write it. A bare date is midnight UTC.
    public init?(parsing text: String) {
        var text = text
        guard let value = text.withUTF8({ Self.parse(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = value
    }

    private static func parse(_ b: UnsafeRawBufferPointer) -> Timestamp? {
        var i = 0
        func digits(_ count: Int) -> Int64? {
            guard i + count <= b.count else { return nil }
            var value: Int64 = 0
            for _ in 0..<count {
                let byte = b[i]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
                i += 1
            }
            return value
        }
        func expect(_ char: UInt8) -> Bool {
            guard i < b.count, b[i] == char else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
            let day = digits(2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month) else { return nil }
        if i == b.count { return Timestamp(year: year, month: month, day: day) }
        guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2) else { return nil }
        var second: Int64 = 0
        if expect(UInt8(ascii: ":")) {
            guard let value = digits(2) else { return nil }
            second = value
        }
        guard hour < 24, minute < 60, second < 61 else { return nil }
        var micros: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var count = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if count < 6 { micros = micros * 10 + Int64(b[i] - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { return nil }
            for _ in min(count, 6)..<6 { micros *= 10 }
        }
        var offsetSeconds: Int64 = 0
        if i < b.count {
            switch b[i] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                i += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let hours = digits(2) else { return nil }
                _ = expect(UInt8(ascii: ":"))
                let minutes = i < b.count ? (digits(2) ?? -1) : 0
                guard minutes >= 0, hours < 24, minutes < 60 else { return nil }
                offsetSeconds = sign * (hours * 3600 + minutes * 60)
            default:
                return nil
            }
        }
        guard i == b.count else { return nil }
        // A leap second is folded into the next second, as PostgreSQL does.
        let base = Timestamp(year: year, month: month, day: day, hour: hour, minute: minute, second: second, microsecond: micros)
        let time = Timestamp(microseconds: base.microseconds - offsetSeconds * 1_000_000)
        // An offset must not carry the time out of the years RFC 3339 can write (0000-01-01T00:00:00+00:01).
        return Self.representable.contains(time) ? time : nil
    }

    /// The instants RFC 3339 can write: years 0000 to 9999.
    public static let representable =
        Timestamp(year: 0, month: 1, day: 1)...Timestamp(year: 9999, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999_999)

    static func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

@inline(__always)
private func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
    var quotient = value / divisor
    var remainder = value % divisor
    if remainder < 0 {
        quotient -= 1
        remainder += divisor
    }
    return (quotient, remainder)
}

/// Appends `value` as exactly `width` decimal digits, zero-padded, without a temporary array
/// (this runs several times for every timestamp Cairn writes).
@inline(__always)
/// Writes `value` with at least `width` digits; a negative value gets its sign, and a value
/// wider than `width` all its digits (no instant Cairn parses needs either, but a time computed
/// from one, such as a clock-skew correction, must never crash the formatter).
private func appendPadded(_ out: inout [UInt8], _ value: Int64, width: Int) {
    guard value >= 0, String(value).utf8.count <= width else {
        let digits = String(value.magnitude)
        if value < 0 { out.append(UInt8(ascii: "-")) }
        for _ in digits.utf8.count..<max(width, digits.utf8.count) { out.append(UInt8(ascii: "0")) }
        out.append(contentsOf: digits.utf8)
        return
    }
    let start = out.count
    for _ in 0..<width { out.append(UInt8(ascii: "0")) }
    var remaining = value
    var position = start + width - 1
    while position >= start {
        out[position] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: remaining % 10)
        remaining /= 10
        position -= 1
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
