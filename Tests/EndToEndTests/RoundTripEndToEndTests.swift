import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

extension StackTests {
    /// The round trip on the real stack: generated records in every format are ingested into
    /// one app, exported as Segment batch files, and the files ingested into a second app; the
    /// two apps' rows are the same, field by field, but for the app, its ids and the receipt.
    /// (`RoundTripTests` runs the same property on many more events without a stack.)
    @Test func exportedBatchFilesIngestIntoTheSameRows() async throws {
        let seed = UInt64.random(in: 1...UInt64(UInt32.max))
        try await TestStack.with { stack in
            for app in ["first", "second"] { #expect(try await stack.cli(["apps", "create", app]).status == 0) }
            var generator = RecordGenerator(seed: seed)
            var lines: [String] = []
            for format in InputFormat.allCases {
                for index in 0..<60 { lines.append(generator.record(format, index: index).serializedString()) }
            }
            let input = stack.directory + "/generated.jsonl"
            try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
            let ingested = try await stack.cli(["ingest", input, "--app", "first"])
            #expect(ingested.status == 0, "seed \(seed): \(ingested.stderr)")
            try await stack.waitForEmptySpool()

            let out = stack.directory + "/exported"
            let exported = try await stack.cli(["export", "segment", "--app", "first", "--out", out])
            #expect(exported.status == 0, "\(exported.stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("batch-") }.sorted()
            #expect(!files.isEmpty)
            for file in files {
                let again = try await stack.cli(["ingest", out + "/" + file, "--app", "second"])
                #expect(again.status == 0, "seed \(seed): \(file): \(again.stderr)")
            }
            try await stack.waitForEmptySpool()

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            func rows(_ app: String) throws -> [String] {
                try connection.execute(
                    """
                    SELECT event_type, event_name, user_id, company_id, anonymous_id, source, inserted_at, hostname, pathname,
                           screen_width, screen_height, device_type, user_agent, operating_system, browser, browser_language,
                           session, country_code, metadata::text, origin
                    FROM events WHERE app_token = $1
                    """,
                    [app]
                ).rows.map { row in row.map { $0 ?? "∅" }.joined(separator: "|") }.sorted()
            }
            let first = try rows("first")
            let second = try rows("second")
            #expect(first.count > 200, "seed \(seed)")
            #expect(first.count == second.count, "seed \(seed)")
            let missing = Set(first).subtracting(second)
            #expect(
                missing.isEmpty,
                "seed \(seed): rows that did not come back: \(missing.prefix(3)) — came instead: \(Set(second).subtracting(first).prefix(3))"
            )
        }
    }
}
