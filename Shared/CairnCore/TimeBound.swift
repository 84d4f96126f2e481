/// Reads report time bounds: an absolute RFC 3339 time (`2024-05-01T00:00:00Z`, or a date),
/// or a relative one counted back from now (`90m`, `24h`, `7d`, `2w`).
public enum TimeBound {
    public static func parse(_ text: String, now: Timestamp = .now()) -> Timestamp? {
        if let absolute = Timestamp(parsing: text) { return absolute }
        guard let seconds = seconds(text) else { return nil }
        return Timestamp(microseconds: now.microseconds - seconds * 1_000_000)
    }

    /// A length written as a number and a unit: `90s`, `30m`, `24h`, `7d`, `2w`.
    public static func seconds(_ text: String) -> Int64? {
        guard let unit = text.last, let amount = Int64(text.dropLast()), amount >= 0, amount < 100_000 else { return nil }
        switch unit {
        case "s": return amount
        case "m": return amount * 60
        case "h": return amount * 3600
        case "d": return amount * 86_400
        case "w": return amount * 604_800
        default: return nil
        }
    }
}
