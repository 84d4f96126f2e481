import CairnCore
import CairnMethods

// What the page template renders: plain values, every string escaped by the template
// (`{{ }}`) except the SVG of charts, which ``Chart`` escapes as it draws.

struct PageView {
    var title: String
    var app: AppView?
    var nav: [LinkView] = []
    var period: PeriodView?
    var filters: FormView?
    var sections: [SectionView] = []
    var message: String?
    var error: String?
}

struct AppView {
    var name: String
    var csrf: String
}

struct LinkView {
    var label: String
    var href: String
    var current = false
}

struct NameValue {
    var name: String
    var value: String
}

struct PeriodView {
    var action: String
    var since: String
    var until: String
    var tz: String
    /// The page's other parameters, kept when the period changes.
    var hidden: [NameValue]
    var presets: [LinkView]
}

struct OptionView {
    var value: String
    var label: String
    var selected: Bool
}

struct FieldView {
    var label: String
    var name: String
    var value = ""
    var placeholder = ""
    var options: [OptionView] = []
    var list: String?
    /// Stored, not computed: templates see stored properties only.
    var isSelect = false

    static func select(_ label: String, _ name: String, _ choices: [String], selected: String) -> FieldView {
        FieldView(
            label: label,
            name: name,
            options: choices.map { OptionView(value: $0, label: $0.isEmpty ? "(any)" : $0, selected: $0 == selected) },
            isSelect: true
        )
    }
}

struct DataListView {
    var id: String
    var values: [String]
}

struct FormView {
    var action: String
    var hidden: [NameValue] = []
    var fields: [FieldView]
    var submit: String
    var datalists: [DataListView] = []
}

struct ChartView {
    var svg: String
    var report: String
    /// The report API's URL for the same numbers (the browser test compares them).
    var api: String
    var csv: String
    var rows: Int
    var caption: String
}

struct CellView {
    var text: String
    var numeric: Bool
    var href: String?
}

struct RowView {
    var cells: [CellView]
}

struct TableView {
    var columns: [String]
    var rows: [RowView]
    var open: Bool
    var rowCount: Int

    /// A report's rows as a table, every column in the report's order. `link` makes a cell a link.
    init(_ table: ReportTableResult, open: Bool = false, link: (String, JSON?) -> String? = { _, _ in nil }) {
        columns = table.columns
        rows = table.rows.map { row in
            RowView(
                cells: table.columns.map { column in
                    let value = row[column]
                    let numeric: Bool
                    switch value {
                    case .int?, .double?: numeric = true
                    default: numeric = false
                    }
                    return CellView(text: TableText.cell(value), numeric: numeric, href: link(column, value))
                }
            )
        }
        self.open = open
        rowCount = rows.count
    }

    init(columns: [String], rows: [[String]], open: Bool = true) {
        self.columns = columns
        self.rows = rows.map { RowView(cells: $0.map { CellView(text: $0, numeric: false, href: nil) }) }
        self.open = open
        rowCount = rows.count
    }
}

struct TileView {
    var label: String
    var value: String
}

struct ActionFormView {
    var action: String
    var csrf: String
    var hidden: [NameValue]
    var label: String
    var submit: String
}

/// A GET box that opens one person's profile by id.
struct SearchView {
    var action: String
    var hidden: [NameValue]
}

struct LiveView {
    var stream: String
}

struct SectionView {
    var heading: String?
    var note: String?
    var tiles: [TileView]
    var chart: ChartView?
    var table: TableView?
    var form: ActionFormView?
    var search: SearchView?
    var live: LiveView?
    var hasTiles: Bool

    init(
        heading: String? = nil,
        note: String? = nil,
        tiles: [TileView] = [],
        chart: ChartView? = nil,
        table: TableView? = nil,
        form: ActionFormView? = nil,
        search: SearchView? = nil,
        live: LiveView? = nil
    ) {
        self.heading = heading
        self.note = note
        self.tiles = tiles
        self.chart = chart
        self.table = table
        self.form = form
        self.search = search
        self.live = live
        hasTiles = !tiles.isEmpty
    }
}
