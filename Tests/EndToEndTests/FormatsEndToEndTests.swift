import CairnCore
import CairnPostgres
import CairnTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension StackTests {
    @Test func everyFormatThroughTheCLI() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let typed = try await stack.cli(["attributes", "set", "--app", "acme", "--name", "price", "--type", "number"])
            #expect(typed.status == 0, "\(typed.stderr)")
            let listed = try await stack.cli(["attributes", "list", "--app", "acme", "--format", "csv"])
            #expect(listed.stdout.contains("price,number"))

            let expectations: [(file: String, format: String, summary: String)] = [
                ("userpilot-sample.jsonl", "userpilot", "14 new, 0 duplicates, 0 rejected"),
                ("userpilot-interactions.jsonl", "auto", "9 new, 0 duplicates, 0 rejected"),
                ("userguiding.jsonl", "userguiding", "32 new, 0 duplicates, 0 rejected"),
                // The Segment-source form of UserGuiding events is the same events again.
                ("userguiding-segment.jsonl", "segment", "0 new, 14 duplicates, 0 rejected"),
                ("userlike.jsonl", "userlike", "35 new, 0 duplicates, 0 rejected"),
                ("usercom.jsonl", "usercom", "4 new, 0 duplicates, 0 rejected"),
                ("segment.jsonl", "auto", "8 new, 0 duplicates, 0 rejected"),
                ("mixed.jsonl", "auto", "3 new, 2 duplicates, 0 rejected"),
            ]
            for expectation in expectations {
                let result = try await stack.cli([
                    "ingest", TestStack.repositoryRoot + "/Tests/Fixtures/" + expectation.file, "--app", "acme", "--format", expectation.format,
                ])
                #expect(result.status == 0, "\(expectation.file): \(result.stderr)")
                #expect(result.stdout.contains(expectation.summary), "\(expectation.file): \(result.stdout)")
            }
            #expect(try await stack.waitForCount(app: "acme", 105) == 105)

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let origins = try connection.execute("SELECT origin, count(*) FROM events GROUP BY 1 ORDER BY 1").rows
            #expect(origins == [["segment", "8"], ["usercom", "5"], ["userguiding", "33"], ["userlike", "36"], ["userpilot", "23"]])
            // A registered number is stored as a JSON number; the unregistered stay strings.
            let prices = try connection.execute(
                "SELECT jsonb_typeof(metadata->'price'), jsonb_typeof(metadata->'items') FROM events WHERE origin = 'usercom' AND event_name = 'purchase' ORDER BY inserted_at"
            ).rows
            #expect(prices == [["number", "string"], ["number", "string"]])
            // Userlike's personal data is hashed by default.
            let emails = try connection.execute("SELECT count(*) FROM events WHERE metadata ? 'client_email'").rows[0][0]
            #expect(emails == "0")
            let hashed = try connection.execute("SELECT count(*) FROM events WHERE metadata ? 'client_email_sha256'").rows[0][0]
            #expect(hashed == "31")
        }
    }

    @Test func anAcknowledgedEventSurvivesSIGKILLOfIngest() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let identityPID = try #require(try await stack.servicePID("identity"))
            let ingestPID = try #require(try await stack.servicePID("ingest"))
            // With identity frozen, the acknowledged event can only be in ingest's spool.
            kill(identityPID, SIGSTOP)
            let file = stack.directory + "/one.jsonl"
            try #"{"event_type":"track","event_name":"Paid","user_id":"u-1","inserted_at":"2024-05-01T00:00:00Z"}"#.write(
                toFile: file,
                atomically: true,
                encoding: .utf8
            )
            let result = try await stack.cli(["ingest", file, "--app", "acme"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("1 new"))
            kill(ingestPID, SIGKILL)
            kill(identityPID, SIGCONT)
            #expect(try await stack.waitForCount(app: "acme", 1) == 1)
            #expect(try await stack.servicePID("ingest") != ingestPID)
        }
    }
}

extension StackTests {
    @Test func anonymousVisitorsBecomeUsersAndUsersMergeOnRequest() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let ingest = try await stack.cli(["ingest", TestStack.repositoryRoot + "/Tests/Fixtures/identity.jsonl", "--app", "acme"])
            #expect(ingest.status == 0, "\(ingest.stderr)")
            _ = try await stack.waitForCount(app: "acme", 8)

            let shown = try await stack.cli(["users", "show", "--app", "acme", "--user", "ada", "--format", "json"])
            #expect(shown.status == 0, "\(shown.stderr)")
            let ada = try JSONParser.parse(shown.stdout)
            // The two anonymous events from before the identify count as ada's.
            #expect(ada["events"] == .int(6))
            #expect(ada["traits"]?["plan"] == "pro")
            #expect(ada["traits"]?["email"] == "ada@acme.io")
            #expect(ada["company_id"] == "acme-inc")
            #expect(ada["first_seen"] == "2024-05-01T09:03:00.000000Z")
            #expect(ada["aliases"]?.arrayValue?.map { $0["id"] } == ["device-A"])
            // Sessions include the anonymous visit: 09:00–09:05 on May 1st, then May 3rd.
            #expect(ada["sessions"]?.arrayValue?.map { $0["started_at"] } == ["2024-05-01T09:00:00Z", "2024-05-03T10:00:00Z"])
            #expect(ada["sessions"]?.arrayValue?.map { $0["events"] } == [.int(5), .int(1)])

            let company = try JSONParser.parse(
                try await stack.cli(["companies", "show", "--app", "acme", "--company", "acme-inc", "--format", "json"]).stdout
            )
            #expect(company["traits"]?["name"] == "Acme Inc")
            #expect(company["members"]?.arrayValue?.map { $0["user_id"] } == ["ada"])

            let merged = try await stack.cli(["users", "merge", "--app", "acme", "--from", "ada-work", "--into", "ada"])
            #expect(merged.stdout.contains("merged ada-work into ada"), "\(merged.stdout) \(merged.stderr)")
            let after = try JSONParser.parse(
                try await stack.cli(["users", "show", "--app", "acme", "--user", "ada-work", "--format", "json"]).stdout
            )
            #expect(after["user_id"] == "ada")
            #expect(after["events"] == .int(7))
            #expect(after["traits"]?["email"] == "ada@acme.io")
            #expect(after["merged_from"]?.arrayValue?.map { $0["user_id"] } == ["ada-work"])
            // The survivor's sessions now include the merged user's visit on May 4th.
            #expect(
                after["sessions"]?.arrayValue?.map { $0["started_at"] } == ["2024-05-01T09:00:00Z", "2024-05-03T10:00:00Z", "2024-05-04T10:00:00Z"]
            )

            // "undefined" is never aliased; the identify itself is kept.
            let identity = try await stack.call("identity", "system.status")
            #expect(identity["counters"]?["aliases_refused_illegal_id"] == .int(1))
            let unknown = try await stack.cli(["users", "show", "--app", "acme", "--user", "nobody"])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("has no user 'nobody'"))
        }
    }
}

extension StackTests {
    @Test func aDeletedUserLeavesNoTraceAndStaysDeleted() async throws {
        try await TestStack.with { stack in
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let fixture = TestStack.repositoryRoot + "/Tests/Fixtures/identity.jsonl"
            #expect(try await stack.cli(["ingest", fixture, "--app", "acme"]).status == 0)
            // A refused record that names ada, kept as a dead letter.
            let bad = stack.directory + "/bad.jsonl"
            try #"{"type":"track","userId":"ada","properties":{"note":"no event name"}}"#.write(toFile: bad, atomically: true, encoding: .utf8)
            #expect(try await stack.cli(["ingest", bad, "--app", "acme"]).status == 2)
            _ = try await stack.waitForCount(app: "acme", 8)

            let deleted = try await stack.cli(["users", "delete", "--app", "acme", "--user", "ada"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(deleted.stdout.contains("events: 6"), "\(deleted.stdout)")
            #expect(deleted.stdout.contains("dead letters: 1"), "\(deleted.stdout)")

            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let traces = try connection.execute(
                """
                SELECT (SELECT count(*) FROM events WHERE user_id = 'ada' OR anonymous_id = 'device-A' OR metadata::text LIKE '%ada@acme.io%')
                     + (SELECT count(*) FROM users WHERE user_id = 'ada' OR traits::text LIKE '%ada@acme.io%')
                     + (SELECT count(*) FROM identity_aliases WHERE user_id = 'ada' OR alias_id IN ('ada', 'device-A'))
                     + (SELECT count(*) FROM user_sessions WHERE person IN ('ada', 'anonymous:device-A'))
                     + (SELECT count(*) FROM user_companies WHERE user_id = 'ada')
                """
            ).rows[0][0]
            #expect(traces == "0")
            #expect(try await stack.cli(["deadletters", "list", "--app", "acme", "--format", "json"]).stdout.contains("ada") == false)
            #expect(try await stack.cli(["users", "show", "--app", "acme", "--user", "ada"]).status == 1)
            // Other people are untouched.
            #expect(try connection.execute("SELECT count(*) FROM events WHERE user_id = 'ada-work'").rows[0][0] == "1")

            // Sending ada's events again stores none of them, and says so.
            let again = try await stack.cli(["ingest", fixture, "--app", "acme"])
            #expect(again.stdout.contains("6 suppressed"), "\(again.stdout)")
            try await stack.waitForEmptySpool()
            #expect(try connection.execute("SELECT count(*) FROM events WHERE user_id = 'ada' OR anonymous_id = 'device-A'").rows[0][0] == "0")

            // Another user's event carrying ada's anonymous id is kept, without that id.
            let borrowed = stack.directory + "/borrowed.jsonl"
            try #"{"type":"track","event":"Borrowed","userId":"eve","anonymousId":"device-A","timestamp":"2024-05-05T00:00:00Z"}"#
                .write(toFile: borrowed, atomically: true, encoding: .utf8)
            #expect(try await stack.cli(["ingest", borrowed, "--app", "acme"]).stdout.contains("1 new"))
            try await stack.waitForEmptySpool()
            #expect(try connection.execute("SELECT user_id, anonymous_id FROM events WHERE event_name = 'Borrowed'").rows == [["eve", nil]])
            #expect(try connection.execute("SELECT count(*) FROM identity_aliases WHERE alias_id = 'device-A'").rows[0][0] == "0")
        }
    }
}
