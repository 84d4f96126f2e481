/// Reads report time bounds: an absolute RFC 3339 time (`2024-05-01T00:00:00Z`, or a date),
/// or a relative one counted back from now (`90m`, `24h`, `7d`, `2w`).
public enum TimeBound {
    public static func parse(_ text: String, now: Timestamp = .now()) -> Timestamp? {
        if let absolute = Timestamp(parsing: text) { return absolute }
        guard let unit = text.last, let amount = Int64(text.dropLast()), amount >= 0, amount < 100_000 else { return nil }
        let seconds: Int64
        switch unit {
        case "s": seconds = amount
        case "m": seconds = amount * 60
        case "h": seconds = amount * 3600
        case "d": seconds = amount * 86_400
        case "w": seconds = amount * 604_800
        default: return nil
        }
        return Timestamp(microseconds: now.microseconds - seconds * 1_000_000)
    }
}
