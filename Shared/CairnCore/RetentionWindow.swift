/// How long an app's events are kept: a whole number of days, weeks, months or years
/// (`90d`, `12w`, `13mo`, `2y`). Months and years are calendar ones, as PostgreSQL's intervals.
public struct RetentionWindow: Sendable, Equatable, CustomStringConvertible {
    public enum Unit: String, Sendable, CaseIterable {
        case day = "d"
        case week = "w"
        case month = "mo"
        case year = "y"
    }

    public var count: Int
    public var unit: Unit

    public init(count: Int, unit: Unit) {
        self.count = count
        self.unit = unit
    }

    /// Parses `13mo`; nil for anything else (`m` is refused: minutes or months?). At most 100 years.
    public init?(_ text: String) {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 6, let count = Int(digits), count >= 1,
            let unit = Unit(rawValue: String(text.dropFirst(digits.count)).lowercased())
        else { return nil }
        // At most 100 years, in any unit.
        let limit =
            switch unit {
            case .day: 36_525
            case .week: 5_218
            case .month: 1_200
            case .year: 100
            }
        guard count <= limit else { return nil }
        self.count = count
        self.unit = unit
    }

    /// As PostgreSQL reads an interval.
    public var interval: String {
        switch unit {
        case .day: "\(count) days"
        case .week: "\(count * 7) days"
        case .month: "\(count) months"
        case .year: "\(count) years"
        }
    }

    /// The stored interval's months and days back in this form (whole years as `y`, whole weeks as `w`).
    public init?(months: Int, days: Int) {
        if months == 0, days > 0 {
            self.init(count: days % 7 == 0 ? days / 7 : days, unit: days % 7 == 0 ? .week : .day)
        } else if days == 0, months > 0 {
            self.init(count: months % 12 == 0 ? months / 12 : months, unit: months % 12 == 0 ? .year : .month)
        } else {
            return nil
        }
    }

    public var description: String { "\(count)\(unit.rawValue)" }
}
