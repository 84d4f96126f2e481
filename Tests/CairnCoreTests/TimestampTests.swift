import CairnCore
import Testing

@Suite struct TimestampTests {
    /// An offset that carries a time out of the years RFC 3339 writes is no time; and no
    /// instant, however computed, can crash the formatter.
    @Test func timesOutsideTheWritableYearsAreRefusedAndNeverCrash() throws {
        #expect(Timestamp(parsing: "0000-01-01T00:00:00+00:01") == nil)
        #expect(Timestamp(parsing: "9999-12-31T23:59:59-01:00") == nil)
        #expect(Timestamp(parsing: "0000-01-01T00:00:00Z") != nil)
        #expect(Timestamp(microseconds: Timestamp(year: 0, month: 1, day: 1).microseconds - 1).description.hasPrefix("-0001-12-31"))
        #expect(Timestamp(year: 10_000, month: 1, day: 1).description == "10000-01-01T00:00:00.000000Z")
    }

    @Test(arguments: [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000Z"),
        ("2024-05-01T12:00:00.071+00:00", "2024-05-01T12:00:00.071000Z"),
        ("2024-05-01T14:06:56.571750+02:00", "2024-05-01T12:06:56.571750Z"),
        ("2024-05-01T12:00:00.1234567Z", "2024-05-01T12:00:00.123456Z"),
        ("2024-05-01 12:00:00.5", "2024-05-01T12:00:00.500000Z"),
        ("2024-05-01 12:00:00.123456+00", "2024-05-01T12:00:00.123456Z"),
        ("2024-02-29", "2024-02-29T00:00:00.000000Z"),
        ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
        ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000000Z"),
    ])
    func parsesAndFormats(input: String, expected: String) throws {
        let timestamp = try #require(Timestamp(parsing: input))
        #expect(timestamp.description == expected)
        #expect(Timestamp(parsing: timestamp.description) == timestamp)
    }

    @Test(arguments: ["2024-13-01", "2023-02-29", "2024-05-01T25:00:00Z", "yesterday", "2024-05-01T12:00:00+0", "2024-05-01T12:00:00.Z", ""])
    func refusesInvalidTimes(_ input: String) {
        #expect(Timestamp(parsing: input) == nil)
    }

    @Test func monthBoundsAndMilliseconds() throws {
        let timestamp = try #require(Timestamp(parsing: "2024-12-15T10:20:30.456789Z"))
        #expect(timestamp.iso8601Milliseconds == "2024-12-15T10:20:30.456Z")
        #expect(timestamp.utcMonthBounds.start.description == "2024-12-01T00:00:00.000000Z")
        #expect(timestamp.utcMonthBounds.end.description == "2025-01-01T00:00:00.000000Z")
    }

    @Test func relativeBoundsCountBackFromNow() throws {
        let now = try #require(Timestamp(parsing: "2024-05-08T00:00:00Z"))
        #expect(TimeBound.parse("7d", now: now)?.description == "2024-05-01T00:00:00.000000Z")
        #expect(TimeBound.parse("24h", now: now)?.description == "2024-05-07T00:00:00.000000Z")
        #expect(TimeBound.parse("2024-01-01", now: now)?.description == "2024-01-01T00:00:00.000000Z")
        #expect(TimeBound.parse("7y", now: now) == nil)
        #expect(TimeBound.parse("d", now: now) == nil)
    }
}
