import CairnCore
import CairnMethods
import Foundation

/// Text made safe for HTML and SVG: every value a client sent (event names, user ids, traits)
/// reaches a page through here or through a template's `{{ }}`, which escapes the same way.
enum HTML {
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            // Controls other than tab and newline have no place in a page; NUL least of all.
            case "\u{0}"..."\u{8}", "\u{B}", "\u{C}", "\u{E}"..."\u{1F}", "\u{7F}": escaped += "\u{FFFD}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}

/// One data point of a chart: what it is called, its value, and the words its tooltip shows.
struct ChartPoint: Sendable {
    var label: String
    var value: Double
    var note: String? = nil
}

/// Charts drawn on the server as SVG, with no script: each data row is one element of class
/// `mark` carrying `data-label` and `data-value`, with a `<title>` for the tooltip. Colours come
/// from the stylesheet's classes (an Okabe–Ito palette that colour-blind readers can tell apart),
/// so the page needs no inline styles and a strict Content-Security-Policy holds.
enum Chart {
    static let width = 720.0

    /// Vertical bars over time: one bar per bucket, a few axis labels, and gridlines at round values.
    static func columns(_ points: [ChartPoint], title: String, series: Int = 0) -> String {
        let height = 220.0
        let (left, bottom, top) = (48.0, 28.0, 10.0)
        let plotWidth = width - left - 8
        let plotHeight = height - bottom - top
        let maximum = niceMaximum(points.map(\.value).max() ?? 0)
        var svg = open(height: height, title: title)
        svg += grid(
            maximum: maximum,
            divisions: maximum.truncatingRemainder(dividingBy: 5) == 0 && maximum < 10 ? 5 : 4,
            left: left,
            right: width - 8,
            top: top,
            plotHeight: plotHeight
        )
        let step = points.isEmpty ? 0 : plotWidth / Double(points.count)
        let barWidth = max(1, step * 0.8)
        let labelEvery = max(1, Int((Double(points.count) / 8).rounded(.up)))
        for (index, point) in points.enumerated() {
            let barHeight = maximum > 0 ? point.value / maximum * plotHeight : 0
            let x = left + Double(index) * step + (step - barWidth) / 2
            svg += mark(
                "rect",
                point,
                index: index,
                series: series,
                attributes:
                    "x=\"\(fmt(x))\" y=\"\(fmt(top + plotHeight - barHeight))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(max(barHeight, 0)))\""
            )
            if index % labelEvery == 0 {
                svg +=
                    "<text class=\"axis\" x=\"\(fmt(x + barWidth / 2))\" y=\"\(fmt(height - 8))\" text-anchor=\"middle\">\(HTML.escape(shortLabel(point.label)))</text>"
            }
        }
        return svg + "</svg>"
    }

    /// Horizontal bars, one per row, largest scale first: names on the left, values on the right.
    /// `maximum` fixes the scale (100 for percentages).
    static func bars(_ points: [ChartPoint], title: String, maximum fixed: Double? = nil, unit: String = "", series: Int = 0) -> String {
        let rowHeight = 26.0
        let (left, right) = (220.0, 90.0)
        let height = max(rowHeight * Double(points.count) + 8, 34)
        let maximum = fixed ?? max(points.map(\.value).max() ?? 0, 1)
        let plotWidth = width - left - right
        var svg = open(height: height, title: title)
        for (index, point) in points.enumerated() {
            let y = 4 + Double(index) * rowHeight
            let barWidth = maximum > 0 ? max(point.value, 0) / maximum * plotWidth : 0
            svg +=
                "<text class=\"label\" x=\"\(fmt(left - 8))\" y=\"\(fmt(y + 17))\" text-anchor=\"end\">\(HTML.escape(truncated(point.label, 30)))</text>"
            svg += mark(
                "rect",
                point,
                index: index,
                series: series,
                attributes: "x=\"\(fmt(left))\" y=\"\(fmt(y + 3))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(rowHeight - 8))\""
            )
            svg +=
                "<text class=\"value\" x=\"\(fmt(left + barWidth + 6))\" y=\"\(fmt(y + 17))\">\(HTML.escape(number(point.value) + unit))</text>"
        }
        return svg + "</svg>"
    }

    /// Stages side by side for each row (seen, started, completed, …): one `mark` group per row,
    /// a bar per stage in the stage's colour, and a legend. For funnels within one entity.
    static func stages(_ rows: [(label: String, values: [Double])], stages: [String], title: String) -> String {
        let barHeight = 13.0
        let rowHeight = barHeight * Double(max(stages.count, 1)) + 12
        let (left, right, legend) = (220.0, 90.0, 24.0)
        let height = legend + rowHeight * Double(rows.count) + 4
        let maximum = max(rows.flatMap(\.values).max() ?? 0, 1)
        let plotWidth = width - left - right
        var svg = open(height: height, title: title)
        for (index, stage) in stages.enumerated() {
            let x = left + Double(index) * 110
            svg += "<rect class=\"series-\(index)\" x=\"\(fmt(x))\" y=\"6\" width=\"10\" height=\"10\"/>"
            svg += "<text class=\"axis\" x=\"\(fmt(x + 14))\" y=\"15\">\(HTML.escape(stage))</text>"
        }
        for (row, entry) in rows.enumerated() {
            let y = legend + Double(row) * rowHeight
            let summary = zip(stages, entry.values).map { "\($0) \(number($1))" }.joined(separator: ", ")
            svg +=
                "<g class=\"mark\" tabindex=\"0\" data-row=\"\(row)\" data-label=\"\(HTML.escape(entry.label))\" data-value=\"\(number(entry.values.first ?? 0))\"><title>\(HTML.escape(entry.label)): \(HTML.escape(summary))</title>"
            svg +=
                "<text class=\"label\" x=\"\(fmt(left - 8))\" y=\"\(fmt(y + rowHeight / 2 + 2))\" text-anchor=\"end\">\(HTML.escape(truncated(entry.label, 30)))</text>"
            for (index, value) in entry.values.enumerated() {
                let barY = y + 4 + Double(index) * barHeight
                let barWidth = max(value, 0) / maximum * plotWidth
                svg +=
                    "<rect class=\"series-\(index)\" x=\"\(fmt(left))\" y=\"\(fmt(barY))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(barHeight - 2))\"/>"
                svg += "<text class=\"axis\" x=\"\(fmt(left + barWidth + 4))\" y=\"\(fmt(barY + barHeight - 2))\">\(number(value))</text>"
            }
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// A cohort grid: one row (a `mark` group) per cohort, a cell per period coloured by its rate
    /// in ten steps of one hue, with the rate written in the cell.
    static func grid(cohorts: [(label: String, people: Double, rates: [Double?])], title: String) -> String {
        let cell = (width: 58.0, height: 26.0)
        let left = 150.0
        let periods = cohorts.map(\.rates.count).max() ?? 0
        let height = 24 + cell.height * Double(cohorts.count) + 4
        let svgWidth = max(left + cell.width * Double(periods) + 8, 320)
        var svg =
            "<svg class=\"chart grid\" role=\"img\" viewBox=\"0 0 \(fmt(svgWidth)) \(fmt(height))\" width=\"\(fmt(svgWidth))\" aria-label=\"\(HTML.escape(title))\">"
        for period in 0..<periods {
            svg +=
                "<text class=\"axis\" x=\"\(fmt(left + cell.width * (Double(period) + 0.5)))\" y=\"16\" text-anchor=\"middle\">\(period)</text>"
        }
        for (row, cohort) in cohorts.enumerated() {
            let y = 24 + Double(row) * cell.height
            svg +=
                "<g class=\"mark\" data-row=\"\(row)\" data-label=\"\(HTML.escape(cohort.label))\" data-value=\"\(number(cohort.people))\"><title>\(HTML.escape(cohort.label)): \(number(cohort.people)) people</title>"
            svg +=
                "<text class=\"label\" x=\"\(fmt(left - 8))\" y=\"\(fmt(y + 17))\" text-anchor=\"end\">\(HTML.escape(cohort.label)) (\(number(cohort.people)))</text>"
            for (period, rate) in cohort.rates.enumerated() {
                let x = left + Double(period) * cell.width
                guard let rate else { continue }
                let step = min(10, max(0, Int((rate / 10).rounded(.down))))
                svg +=
                    "<rect class=\"heat heat-\(step)\" x=\"\(fmt(x + 1))\" y=\"\(fmt(y + 1))\" width=\"\(fmt(cell.width - 2))\" height=\"\(fmt(cell.height - 2))\"><title>period \(period): \(number(rate))%</title></rect>"
                svg +=
                    "<text class=\"cell \(step >= 6 ? "on-dark" : "")\" x=\"\(fmt(x + cell.width / 2))\" y=\"\(fmt(y + 17))\" text-anchor=\"middle\">\(number(rate))%</text>"
            }
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// An NPS gauge from −100 to 100: a half ring, the score's arc, and the score in words.
    static func gauge(_ point: ChartPoint, index: Int) -> String {
        let (cx, cy, r) = (110.0, 105.0, 80.0)
        let score = min(100, max(-100, point.value))
        let angle = Double.pi * (1 - (score + 100) / 200)
        let end = (x: cx + r * cos(angle), y: cy - r * sin(angle))
        let large = 0
        var svg =
            "<svg class=\"chart gauge\" role=\"img\" viewBox=\"0 0 220 130\" width=\"220\" aria-label=\"NPS \(HTML.escape(point.label))\">"
        svg += "<path class=\"track\" d=\"M \(fmt(cx - r)) \(fmt(cy)) A \(fmt(r)) \(fmt(r)) 0 0 1 \(fmt(cx + r)) \(fmt(cy))\"/>"
        svg +=
            "<path class=\"mark series-\(score >= 0 ? 2 : 5)\" data-row=\"\(index)\" data-label=\"\(HTML.escape(point.label))\" data-value=\"\(number(point.value))\" d=\"M \(fmt(cx - r)) \(fmt(cy)) A \(fmt(r)) \(fmt(r)) 0 \(large) 1 \(fmt(end.x)) \(fmt(end.y))\"><title>\(HTML.escape(point.label)): NPS \(number(point.value))</title></path>"
        svg += "<text class=\"score\" x=\"\(fmt(cx))\" y=\"\(fmt(cy - 10))\" text-anchor=\"middle\">\(number(point.value))</text>"
        svg += "<text class=\"axis\" x=\"\(fmt(cx - r))\" y=\"\(fmt(cy + 18))\" text-anchor=\"middle\">−100</text>"
        svg += "<text class=\"axis\" x=\"\(fmt(cx + r))\" y=\"\(fmt(cy + 18))\" text-anchor=\"middle\">100</text>"
        svg += "<text class=\"label\" x=\"\(fmt(cx))\" y=\"\(fmt(cy + 20))\" text-anchor=\"middle\">\(HTML.escape(truncated(point.label, 28)))</text>"
        return svg + "</svg>"
    }

    // MARK: Pieces

    private static func open(height: Double, title: String) -> String {
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 \(fmt(width)) \(fmt(height))\" preserveAspectRatio=\"xMinYMin meet\" aria-label=\"\(HTML.escape(title))\">"
    }

    private static func mark(_ element: String, _ point: ChartPoint, index: Int, series: Int, attributes: String) -> String {
        let tip = HTML.escape(point.label) + ": " + number(point.value) + (point.note.map { " · " + HTML.escape($0) } ?? "")
        return
            "<\(element) class=\"mark series-\(series)\" tabindex=\"0\" data-row=\"\(index)\" data-label=\"\(HTML.escape(point.label))\" data-value=\"\(number(point.value))\" \(attributes)><title>\(tip)</title></\(element)>"
    }

    private static func grid(maximum: Double, divisions: Int, left: Double, right: Double, top: Double, plotHeight: Double) -> String {
        var svg = ""
        for step in 0...divisions {
            let value = maximum * Double(step) / Double(divisions)
            let y = top + plotHeight - plotHeight * Double(step) / Double(divisions)
            svg += "<line class=\"gridline\" x1=\"\(fmt(left))\" x2=\"\(fmt(right))\" y1=\"\(fmt(y))\" y2=\"\(fmt(y))\"/>"
            svg += "<text class=\"axis\" x=\"\(fmt(left - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(number(value))</text>"
        }
        return svg
    }

    /// The smallest 1, 2 or 5 times a power of ten at or above `value`, and at least 4, so that
    /// the gridlines of small counts fall on whole numbers.
    static func niceMaximum(_ value: Double) -> Double {
        guard value > 4 else { return 4 }
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    /// A number as the tables show it: whole numbers bare, others to two decimals.
    static func number(_ value: Double) -> String { TableText.cell(.double(value)) }

    static func fmt(_ value: Double) -> String { String((value * 10).rounded() / 10) }

    /// A time bucket's label, shortened: `2024-05-01` stays, `2024-05-01T13:00:00Z` becomes `13:00`.
    static func shortLabel(_ label: String) -> String {
        if label.count > 10, let t = label.firstIndex(of: "T") ?? label.firstIndex(of: " ") {
            return String(label[label.index(after: t)...].prefix(5))
        }
        return label
    }

    static func truncated(_ text: String, _ limit: Int) -> String { text.count > limit ? String(text.prefix(limit - 1)) + "…" : text }
}
