import CairnCore
import Testing

@Suite struct RetentionWindowTests {
    @Test(arguments: [
        ("90d", "90 days", "90d"), ("12w", "84 days", "12w"), ("13mo", "13 months", "13mo"), ("2y", "2 years", "2y"),
        ("24MO", "24 months", "24mo"), ("1d", "1 days", "1d"), ("1200mo", "1200 months", "1200mo"), ("100y", "100 years", "100y"),
        ("36525d", "36525 days", "36525d"),
    ])
    func parsesDaysWeeksMonthsAndYears(_ text: String, _ interval: String, _ shown: String) throws {
        let window = try #require(RetentionWindow(text))
        #expect(window.interval == interval)
        #expect(window.description == shown)
    }

    /// Minutes or months? `m` is refused; so are zero, negatives, fractions, spaces and centuries.
    @Test(arguments: ["13m", "0d", "-3d", "1.5y", "13 mo", "", "mo", "101y", "1201mo", "36526d", "5219w", "9999999d", "13mo ", "１３mo"])
    func refusesAnythingElse(_ text: String) {
        #expect(RetentionWindow(text) == nil)
    }

    /// What PostgreSQL keeps (months and days) reads back in the same form.
    @Test func readsBackFromMonthsAndDays() {
        #expect(RetentionWindow(months: 13, days: 0)?.description == "13mo")
        #expect(RetentionWindow(months: 24, days: 0)?.description == "2y")
        #expect(RetentionWindow(months: 0, days: 84)?.description == "12w")
        #expect(RetentionWindow(months: 0, days: 90)?.description == "90d")
        #expect(RetentionWindow(months: 0, days: 0) == nil)
        #expect(RetentionWindow(months: 1, days: 1) == nil)
    }
}
