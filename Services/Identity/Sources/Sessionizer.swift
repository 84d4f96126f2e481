import CairnCore

/// Server-side sessions: a pure function of one person's event times, so the result never
/// depends on how events were batched, redelivered, or how late they arrived.
///
/// A new session starts at the person's first event, after `inactivity` without events,
/// once a session has lasted `maximumLength`, and at every `session_start` event. Sessions
/// are numbered 1, 2, 3… in time order, so a person's number only ever increases with time.
public struct Sessionizer: Sendable, Equatable {
    /// Defaults to 30 minutes.
    public var inactivity: Duration
    /// Defaults to 24 hours.
    public var maximumLength: Duration

    public init(inactivity: Duration = .seconds(30 * 60), maximumLength: Duration = .seconds(24 * 3600)) {
        self.inactivity = inactivity
        self.maximumLength = maximumLength
    }

    /// One event as sessions see it: its time, and whether it is a `session_start`.
    /// Packed in one integer (time × 2, minus 1 for a start) so a start sorts before other
    /// events at the same instant and a person's history is a compact sorted array.
    public struct Point: Sendable, Hashable, Comparable {
        public let packed: Int64

        public init(time: Timestamp, isSessionStart: Bool) {
            packed = time.microseconds * 2 + (isSessionStart ? 0 : 1)
        }

        public init(packed: Int64) {
            self.packed = packed
        }

        public var time: Timestamp { Timestamp(microseconds: packed >> 1) }
        public var isSessionStart: Bool { packed & 1 == 0 }

        public static func < (lhs: Point, rhs: Point) -> Bool { lhs.packed < rhs.packed }
    }

    public struct Session: Sendable, Equatable {
        public var number: Int
        public var start: Timestamp
        public var end: Timestamp
        public var events: Int

        /// `[number, start, end, events]`, as `storage.write`'s `sessions` rows carry it.
        public var json: JSON {
            [.int(Int64(number)), .string(start.description), .string(end.description), .int(Int64(events))]
        }
    }

    /// The sessions of a history given as sorted, distinct points.
    public func sessions(of points: [Point]) -> [Session] {
        var sessions: [Session] = []
        let gap = microseconds(inactivity)
        let length = microseconds(maximumLength)
        for point in points {
            let time = point.time
            if var current = sessions.last,
                !point.isSessionStart,
                time.microseconds - current.end.microseconds <= gap,
                time.microseconds - current.start.microseconds < length
            {
                current.end = time
                current.events += 1
                sessions[sessions.count - 1] = current
            } else {
                sessions.append(Session(number: sessions.count + 1, start: time, end: time, events: 1))
            }
        }
        return sessions
    }

    private func microseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}

/// A person's history: sorted distinct points, merged in place.
public struct SessionHistory: Sendable, Equatable {
    public private(set) var points: [Sessionizer.Point] = []

    public init(points: [Sessionizer.Point] = []) {
        self.points = Array(Set(points)).sorted()
    }

    /// Adds points; a point already present (a redelivered event) changes nothing.
    public mutating func insert(_ new: [Sessionizer.Point]) {
        guard !new.isEmpty else { return }
        if let last = points.last, let first = new.min(), first > last {
            points.append(contentsOf: Array(Set(new)).sorted())
            return
        }
        points = Array(Set(points).union(new)).sorted()
    }
}
