import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

/// Retention against a real stack. Each app that loses events has a control app that was sent
/// only the events the window keeps: afterwards every report of the two must be equal, so the
/// rollups and sessions are exact for what remains.
@Suite struct RetentionTests {
    static let window = 400
    /// The retention cutoff for a window of `window` days: the start of that UTC day.
    static var cutoff: Timestamp {
        let now = Timestamp.now().microseconds
        let today = now - now % 86_400_000_000
        return Timestamp(microseconds: today - Int64(window) * 86_400_000_000)
    }

    static func at(_ offset: Int64, minutes: Int64 = 0) -> String {
        Timestamp(microseconds: cutoff.microseconds + offset * 86_400_000_000 + minutes * 60_000_000).description
    }

    /// A person's events around the cutoff: events well before it, a session that spans it, and
    /// events after it, with a funnel's steps among them. Identifies and company memberships
    /// come after the cutoff: who people are stays through retention (their traits and
    /// companies), so the control must know them the same way.
    static func events(person: Int) -> [(time: String, line: String)] {
        let user = "u\(person)"
        func track(_ name: String, _ time: String) -> (String, String) {
            (time, #"{"type":"track","event":"\#(name)","userId":"\#(user)","timestamp":"\#(time)","properties":{"price":\#(person * 3)}}"#)
        }
        return [
            track("Signup Started", at(-30, minutes: 2)),
            track("Signup Completed", at(-20)),
            track("Viewed", at(-1, minutes: 24 * 60 - 10)),
            track("Viewed", at(0, minutes: 10)),
            (at(0, minutes: 11), #"{"type":"identify","userId":"\#(user)","traits":{"plan":"free"},"timestamp":"\#(at(0, minutes: 11))"}"#),
            (at(0, minutes: 12), #"{"type":"group","userId":"\#(user)","groupId":"c\#(person % 2)","timestamp":"\#(at(0, minutes: 12))"}"#),
            track("Signup Started", at(0, minutes: 20)),
            track("Signup Completed", at(3)),
            (at(5), #"{"type":"group","userId":"\#(user)","groupId":"c\#(person % 3)","timestamp":"\#(at(5))"}"#),
            track("Viewed", at(40 + Int64(person))),
        ]
    }

    static func write(_ lines: [String], to file: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    }

    /// The reports a retention run must leave exact, as JSON rows.
    static func reports(_ stack: TestStack, app: String) async throws -> [String: String] {
        let since = at(-60)
        let until = at(60)
        let invocations: [String: [String]] = [
            "events by day": ["report", "events", "--by", "day", "--since", since, "--until", until],
            "events by name": ["report", "events", "--since", since, "--until", until],
            "uniques by week": ["report", "uniques", "--by", "week", "--since", since, "--until", until],
            "uniques by month": ["report", "uniques", "--by", "month", "--since", since, "--until", until],
            "sessions": ["report", "sessions", "--since", since, "--until", until],
            "funnel": ["report", "funnel", "--step", "Signup Started", "--step", "Signup Completed", "--since", since, "--until", until],
            "companies": ["report", "companies"],
            "users who viewed": ["report", "users", "--did", "Viewed"],
            "stats": ["report", "stats", "--event", "Viewed", "--attr", "price", "--since", since, "--until", until],
        ]
        var answers: [String: String] = [:]
        for (name, arguments) in invocations {
            let result = try await stack.cli(arguments + ["--app", app, "--format", "json"])
            #expect(result.status == 0, "\(name): \(result.stderr)")
            let json = try JSONParser.parse(Array(result.stdout.utf8))
            answers[name] = (json["rows"] ?? json).serializedString()
        }
        return answers
    }

    @Test func oldEventsGoAndEveryReportStaysExactForWhatRemains() async throws {
        // The daily job's first run would come a minute after start, in the middle of the test.
        try await TestStack.with(stack: try TestStack.defaultStack(settings: ["retention_first_run_s": 86_400], for: "identity")) { stack in
            for app in ["shared", "shared-control", "alone", "alone-control", "keeper", "profile"] {
                #expect(try await stack.cli(["apps", "create", app]).status == 0)
                #expect(try await stack.cli(["attributes", "set", "--app", app, "--name", "price", "--type", "number"]).status == 0)
            }
            let cutoff = Self.cutoff.description
            let all = (1...6).flatMap { Self.events(person: $0) }
            let kept = all.filter { $0.time >= cutoff }
            #expect(kept.count > 10 && kept.count < all.count)
            let file = stack.directory + "/events.jsonl"
            // `shared` and `keeper` share the partitions; `alone` has its old rows a year further back, alone in theirs.
            let aloneAll = all.map { item in
                item.time >= cutoff
                    ? item.line
                    : item.line.replacingOccurrences(
                        of: item.time,
                        with: Timestamp(
                            microseconds: Timestamp(parsing: item.time)!.microseconds - 400 * 86_400_000_000
                        ).description
                    )
            }
            for (app, lines) in [
                ("shared", all.map(\.line)), ("shared-control", kept.map(\.line)), ("keeper", all.map(\.line)),
                ("alone", aloneAll), ("alone-control", kept.map(\.line)),
            ] {
                try Self.write(lines, to: file)
                let ingested = try await stack.cli(["ingest", file, "--app", app])
                #expect(ingested.status == 0, "\(ingested.stderr)")
            }
            // A person identified long ago keeps their traits when the identify itself goes.
            try Self.write(
                [
                    #"{"type":"identify","userId":"p1","traits":{"plan":"pro"},"timestamp":"\#(Self.at(-100))"}"#,
                    #"{"type":"track","event":"Viewed","userId":"p1","timestamp":"\#(Self.at(2))"}"#,
                ],
                to: file
            )
            #expect(try await stack.cli(["ingest", file, "--app", "profile"]).status == 0)
            #expect(try await stack.cli(["apps", "configure", "--app", "profile", "--retention", "\(Self.window)d"]).status == 0)
            #expect(try await stack.waitForCount(app: "keeper", Int64(all.count)) == Int64(all.count))
            #expect(try await stack.waitForCount(app: "alone-control", Int64(kept.count)) == Int64(kept.count))
            try await stack.waitForFollowers()

            // No window: nothing to do, and one app asked for by name is told how to set one.
            let none = try await stack.cli(["retention", "run", "--app", "shared"])
            #expect(none.status != 0 && none.stderr.contains("--retention"), "\(none.stderr)")
            #expect(try await stack.cli(["apps", "configure", "--app", "shared", "--retention", "5m"]).status != 0)
            let configured = try await stack.cli(["apps", "configure", "--app", "shared", "--retention", "\(Self.window)d"])
            #expect(configured.stdout.contains("events kept for \(Self.window)d"), "\(configured.stdout)")
            #expect(try await stack.cli(["apps", "configure", "--app", "alone", "--retention", "\(Self.window)d"]).status == 0)

            // A dry run says what would go and changes nothing.
            let dry = try await stack.cli(["retention", "run", "--dry-run", "--format", "json"])
            #expect(dry.status == 0, "\(dry.stderr)")
            let plan = try JSONParser.parse(Array(dry.stdout.utf8))
            let planned = Dictionary(uniqueKeysWithValues: (plan["apps"]?.arrayValue ?? []).map { ($0["app"]?.stringValue ?? "", $0) })
            #expect(planned["shared"]?["events"] == .int(Int64(all.count - kept.count)), "\(dry.stdout)")
            #expect(planned["alone"]?["events"] == .int(Int64(all.count - kept.count)))
            #expect(planned["shared"]?["method"] == "delete")
            #expect(planned["alone"]?["method"] == "drop")
            #expect(planned["shared"]?["cutoff"] == .string(String(cutoff.prefix(10)) + "T00:00:00Z"))
            #expect(try await stack.storedCount(app: "shared") == Int64(all.count))

            let expected = try await Self.reports(stack, app: "shared-control")
            let expectedAlone = try await Self.reports(stack, app: "alone-control")
            let keeperBefore = try await Self.reports(stack, app: "keeper")
            #expect(try await Self.reports(stack, app: "shared") != expected, "the old events must show before the run")

            // The run, with an erasure of the same app at the same moment: they take turns.
            async let erased = stack.cli(["users", "delete", "--app", "shared", "--user", "u6"])
            let run = try await stack.cli(["retention", "run", "--format", "json"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try await erased.status == 0)
            let done = try JSONParser.parse(Array(run.stdout.utf8))
            let partitions = (done["partitions_dropped"]?.arrayValue ?? []).compactMap { $0["partition"]?.stringValue }
            #expect(partitions.count == 1, "\(run.stdout)")
            try await stack.waitForFollowers()

            // u6 is gone from `shared`: take them out of the control too, then compare everything.
            #expect(try await stack.cli(["users", "delete", "--app", "shared-control", "--user", "u6"]).status == 0)
            try await stack.waitForFollowers()
            let expectedAfterErasure = try await Self.reports(stack, app: "shared-control")
            #expect(expectedAfterErasure != expected)
            let shared = try await Self.reports(stack, app: "shared")
            for (name, answer) in expectedAfterErasure { #expect(shared[name] == answer, "shared, \(name)") }
            let alone = try await Self.reports(stack, app: "alone")
            for (name, answer) in expectedAlone { #expect(alone[name] == answer, "alone, \(name)") }
            #expect(try await Self.reports(stack, app: "keeper") == keeperBefore, "an app without a window keeps everything")
            #expect(try await stack.storedCount(app: "profile") == 1)
            let profile = try await stack.cli(["users", "show", "--app", "profile", "--user", "p1", "--format", "json"])
            #expect(profile.stdout.contains("pro"), "\(profile.stdout)")

            // The stored sessions equal the control's; the dropped partition is gone; a second run removes nothing.
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            func sessions(_ app: String) throws -> [[String?]] {
                try connection.execute(
                    "SELECT person, session, started_at::text, ended_at::text, events FROM user_sessions WHERE app_token = $1 ORDER BY 1, 2",
                    [app]
                ).rows
            }
            #expect(try sessions("shared") == sessions("shared-control"))
            #expect(try sessions("alone") == sessions("alone-control"))
            #expect(try !sessions("shared").isEmpty)
            // First seen at the first kept event, as the control saw them.
            func firstSeen(_ app: String) throws -> [[String?]] {
                try connection.execute("SELECT user_id, first_seen::text FROM users WHERE app_token = $1 ORDER BY 1", [app]).rows
            }
            #expect(try firstSeen("shared") == firstSeen("shared-control"))
            #expect(try firstSeen("alone") == firstSeen("alone-control"))
            let remaining = try connection.execute("SELECT count(*) FROM pg_class WHERE relname = $1", [partitions.first ?? ""]).rows
            #expect(remaining == [["0"]])
            let again = try await stack.cli(["retention", "run", "--format", "json"])
            #expect(try JSONParser.parse(Array(again.stdout.utf8))["events"] == .int(0), "\(again.stdout)")
            // An event older than the window, ingested afterwards, into the dropped range: stored (its partition made again), then removed.
            try Self.write([#"{"type":"track","event":"Late","userId":"u1","timestamp":"\#(Self.at(-430))"}"#], to: file)
            #expect(try await stack.cli(["ingest", file, "--app", "alone"]).status == 0)
            try await stack.waitForFollowers()
            let late = try await stack.cli(["retention", "run", "--app", "alone", "--no-drop", "--format", "json"])
            #expect(try JSONParser.parse(Array(late.stdout.utf8))["events"] == .int(1), "\(late.stdout)")
            for (name, answer) in expectedAlone { #expect(try await Self.reports(stack, app: "alone")[name] == answer, "alone again, \(name)") }
        }
    }
}

extension RetentionTests {
    /// An app without a window writing old events into a partition that another app's window
    /// empties: what it was acknowledged stays, whether the run empties the partition first, or
    /// the write lands first (the partition then is not emptied). Three rounds, each racing the two.
    @Test func aPartitionIsNeverEmptiedUnderAnotherAppsWrites() async throws {
        // The daily job's first run would come a minute after start, in the middle of the test.
        try await TestStack.with(stack: try TestStack.defaultStack(settings: ["retention_first_run_s": 86_400], for: "identity")) { stack in
            for app in ["old", "keeps"] { #expect(try await stack.cli(["apps", "create", app]).status == 0) }
            #expect(try await stack.cli(["apps", "configure", "--app", "old", "--retention", "1d"]).status == 0)
            var acknowledged = 0
            for (round, year) in [1991, 1992, 1993].enumerated() {
                let file = stack.directory + "/old-\(year).jsonl"
                try Self.write(
                    (0..<500).map { #"{"type":"track","event":"Old","userId":"u\#($0)","timestamp":"\#(year)-06-15T10:00:00Z"}"# },
                    to: file
                )
                #expect(try await stack.cli(["ingest", file, "--app", "old"]).status == 0)
                #expect(try await stack.waitForCount(app: "old", 500) == 500)
                try await stack.waitForFollowers()
                async let run = stack.cli(["retention", "run", "--app", "old"])
                for batch in 0..<6 {
                    let lines = (0..<5).map {
                        #"{"type":"track","event":"Kept","userId":"k\#($0)","messageId":"r\#(round)-b\#(batch)-\#($0)","timestamp":"\#(year)-06-15T11:00:00Z"}"#
                    }
                    let keptFile = stack.directory + "/keeps-\(round)-\(batch).jsonl"
                    try Self.write(lines, to: keptFile)
                    if try await stack.cli(["ingest", keptFile, "--app", "keeps"]).status == 0 { acknowledged += lines.count }
                }
                #expect(try await run.status == 0)
            }
            #expect(acknowledged == 90)
            #expect(try await stack.waitForCount(app: "keeps", Int64(acknowledged)) == Int64(acknowledged))
            #expect(try await stack.storedCount(app: "old") == 0)
        }
    }
}
