import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A shuffled stream, in two formats, of anonymous visits, identifies with anonymous ids,
/// trait changes, session starts, inactivity gaps, aliases and company sightings.
func writeIdentityStream(users: Int, to path: String) throws {
    func time(_ minutes: Int) -> String {
        let day = 1 + minutes / 1440
        return String(format: "2024-05-%02dT%02d:%02d:00Z", day, (minutes / 60) % 24, minutes % 60)
    }
    var lines: [String] = []
    for i in 0..<users {
        let base = i * 7
        let (anonymous, user) = ("dev-\(i)", "user-\(i)")
        lines.append(#"{"type":"page","anonymousId":"\#(anonymous)","properties":{"url":"https://acme.io/"},"timestamp":"\#(time(base))"}"#)
        lines.append(#"{"type":"track","event":"Viewed","anonymousId":"\#(anonymous)","timestamp":"\#(time(base + 3))"}"#)
        lines.append(
            #"{"type":"identify","userId":"\#(user)","anonymousId":"\#(anonymous)","traits":{"plan":"free","n":\#(i)},"timestamp":"\#(time(base + 6))"}"#
        )
        lines.append(#"{"event_type":"session_start","user_id":"\#(user)","inserted_at":"\#(time(base + 120))"}"#)
        lines.append(#"{"event_type":"track","event_name":"Used","user_id":"\#(user)","inserted_at":"\#(time(base + 130))"}"#)
        lines.append(#"{"type":"identify","userId":"\#(user)","traits":{"plan":"pro"},"timestamp":"\#(time(base + 140))"}"#)
        lines.append(#"{"type":"track","event":"Returned","userId":"\#(user)","timestamp":"\#(time(base + 300))"}"#)
        lines.append(#"{"type":"alias","previousId":"old-\#(i)","userId":"\#(user)","timestamp":"\#(time(base + 301))"}"#)
        lines.append(
            #"{"event_type":"track","event_name":"Paid","user_id":"\#(user)","company_id":"co-\#(i % 7)","inserted_at":"\#(time(base + 360))"}"#
        )
    }
    var generator = SeededGenerator(seed: 7)
    lines.shuffle(using: &generator)
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }
}

extension StackTests {
    @Test func identityStateSurvivesSIGKILLOfIdentityAndStorageExactly() async throws {
        try await TestStack.with { stack in
            let file = stack.directory + "/identity-stream.jsonl"
            let users = 300
            try writeIdentityStream(users: users, to: file)
            let total = Int64(users * 9)
            for app in ["clean", "chaos"] { #expect(try await stack.cli(["apps", "create", app]).status == 0) }

            let clean = try await stack.cli(["ingest", file, "--app", "clean", "--batch-size", "50"])
            #expect(clean.status == 0, "\(clean.stderr)")
            #expect(try await stack.waitForCount(app: "clean", total) == total)

            async let chaos = stack.cli(["ingest", file, "--app", "chaos", "--batch-size", "50"])
            var killed: [String] = []
            let deadline = ContinuousClock.now + .seconds(120)
            while killed.count < 2, ContinuousClock.now < deadline {
                let stored = (try? await stack.storedCount(app: "chaos")) ?? 0
                if killed.isEmpty, stored > 0, let pid = try await stack.servicePID("identity") {
                    kill(pid, SIGKILL)
                    killed.append("identity")
                } else if killed.count == 1, stored > total / 2, let pid = try await stack.servicePID("storage") {
                    kill(pid, SIGKILL)
                    killed.append("storage")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await chaos.status == 0)
            #expect(try await stack.waitForCount(app: "chaos", total) == total)
            try await stack.waitForEmptySpool()
            #expect(!killed.isEmpty, "the stream ended before a service could be killed")

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            func state(_ app: String) throws -> [[String?]] {
                var rows: [[String?]] = []
                for sql in [
                    "SELECT 'user', user_id, first_seen::text, last_seen::text, traits::text, company_id FROM users WHERE app_token = $1 ORDER BY user_id",
                    "SELECT 'alias', alias_kind, alias_id, user_id, aliased_at::text, NULL FROM identity_aliases WHERE app_token = $1 ORDER BY alias_kind, alias_id",
                    "SELECT 'session', person, session::text, started_at::text, ended_at::text, events::text FROM user_sessions WHERE app_token = $1 ORDER BY person, session",
                    "SELECT 'member', user_id, company_id, first_seen::text, last_seen::text, NULL FROM user_companies WHERE app_token = $1 ORDER BY user_id, company_id",
                    "SELECT 'event', event_type, event_name, coalesce(user_id, anonymous_id), inserted_at::text, metadata::text FROM events WHERE app_token = $1 ORDER BY inserted_at, event_type, event_name, coalesce(user_id, anonymous_id)",
                ] {
                    rows += try connection.execute(sql, [app]).rows
                }
                return rows
            }
            let expected = try state("clean")
            let actual = try state("chaos")
            #expect(
                actual.count == expected.count,
                "chaos \(Dictionary(grouping: actual, by: { $0[0] ?? "" }).mapValues(\.count)) clean \(Dictionary(grouping: expected, by: { $0[0] ?? "" }).mapValues(\.count))"
            )
            if let first = (0..<min(actual.count, expected.count)).first(where: { actual[$0] != expected[$0] }) {
                Issue.record("state differs first at row \(first): chaos \(actual[first]) vs clean \(expected[first])")
            }
            // The rules held: anonymous ids and old ids joined their users, traits ended "pro",
            // and each user has four sessions: the visit, the session_start, the return after
            // inactivity, and the payment an hour later.
            // Each user's device and old id joined them.
            #expect(expected.filter { $0[0] == "alias" }.count == users * 2)
            #expect(
                try connection.execute("SELECT count(*) FROM users WHERE app_token = 'clean' AND traits->>'plan' = 'pro'").rows[0][0] == String(users)
            )
            let sessions = try connection.execute("SELECT count(*) FROM user_sessions WHERE app_token = 'clean'").rows[0][0]
            #expect(sessions == String(users * 4))
        }
    }
}
