import CairnCore
import CairnPostgres
import CairnTesting
import CairnWire
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Security and supervision checks against the real stack: secrets stay out of logs and
/// status, an unsafe socket directory is refused, and a crash loop is visible and explained.
@Suite(.serialized) struct HardeningTests {
    /// Write keys travel in Basic auth, in the body and in the query; none may reach a log
    /// line, `cairn status`, `cairn apps list` or `/metrics`. The database holds only hashes.
    @Test func writeKeysNeverReachLogsOrStatus() async throws {
        try await TestStack.with { stack in
            let created = try await stack.cli(["apps", "create", "secretive"])
            let key = try #require(created.stdout.split(separator: "\n").first { $0.hasPrefix("write key:") }?.split(separator: " ").last.map(String.init))
            #expect(key.count >= 24)
            let url = try await stack.httpURL()
            let message: JSON = ["type": "track", "event": "Signed In", "userId": "u1", "messageId": "s-1"]
            #expect(try await HTTPIngestTests.post(url + "/v1/track", json: message, key: key).status == 200)
            let inBody: JSON = ["type": "track", "event": "Signed In", "userId": "u1", "messageId": "s-2", "writeKey": .string(key)]
            #expect(try await HTTPIngestTests.post(url + "/v1/track", json: inBody).status == 200)
            #expect(try await HTTPIngestTests.post(url + "/v1/track?writeKey=\(key)", json: ["type": "track", "event": "x", "userId": "u1", "messageId": "s-3"]).status == 200)
            // A wrong key is refused without being echoed either.
            let wrong = "wrong" + String(key.dropFirst(5))
            let refused = try await HTTPIngestTests.post(url + "/v1/track", json: message, key: wrong)
            #expect(refused.status == 401 && !refused.body.contains(wrong))
            let rotated = try await stack.cli(["apps", "rotate-key", "--app", "secretive"])
            let newKey = try #require(rotated.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            _ = try await stack.waitForCount(app: "secretive", 3)

            let status = try await stack.cli(["status", "--format", "json"]).stdout
            let list = try await stack.cli(["apps", "list", "--format", "json"]).stdout
            let metrics = try await HTTPIngestTests.post(url + "/metrics", [], method: .GET).body
            for secret in [key, wrong, newKey] where secret.count >= 24 {
                #expect(!stack.log.contains(secret), "a write key reached the log")
                #expect(!status.contains(secret) && !list.contains(secret) && !metrics.contains(secret))
            }
            let connection = try PostgresConnection(conninfo: stack.databaseConninfo)
            let stored = try connection.execute("SELECT write_key_hash FROM apps WHERE name = 'secretive'").rows.first?[0] ?? nil
            #expect(stored != nil && stored != newKey && stored?.count == 64, "only a SHA-256 hash is stored")
        }
    }

    /// A socket directory others can write to stops the stack before anything listens there.
    @Test func aWritableSocketDirectoryIsRefused() async throws {
        let stack = try await TestStack(waitUntilRunning: false, prepare: { data in
            try FileManager.default.createDirectory(atPath: data + "/run", withIntermediateDirectories: true)
            chmod(data + "/run", 0o777)
        })
        try await stack.waitForSupervisorExit(within: .seconds(30))
        #expect(!stack.supervisor.isRunning)
        #expect(stack.supervisor.terminationStatus == 78, "EX_CONFIG: restarting cannot help")
        #expect(stack.log.contains("group- or world-writable"), "\(stack.log.suffix(1500))")
        #expect(!FileManager.default.fileExists(atPath: stack.runDirectory + "/supervisor.sock"))
        try await stack.stop()
    }

    /// A service that keeps dying is restarted with growing delays, `cairn status` calls it
    /// flapping, and the log says how each run ended.
    @Test func aCrashLoopIsBackedOffReportedAndExplained() async throws {
        try await TestStack.with { stack in
            for _ in 0..<3 {
                let pid = try #require(try await stack.servicePID("reporting"))
                kill(pid, SIGKILL)
                // Wait for the next run, so that each kill ends one.
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline, (try? await stack.servicePID("reporting")).flatMap({ $0 }).map({ $0 == pid }) ?? true {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let table = try await stack.cli(["status"]).stdout
            let row = try #require(table.split(separator: "\n").first { $0.hasPrefix("reporting") })
            #expect(row.contains("flapping"), "\(table)")
            let status = try await stack.call("supervisor", "supervisor.status")
            let reporting = try #require(status["services"]?.arrayValue?.first { $0["name"] == "reporting" })
            #expect(reporting["state"] == "flapping" && reporting["restarts"] == .int(3))
            #expect(reporting["last_exit"]?.stringValue == "signal 9 (Killed)")
            let restarts = stack.log.split(separator: "\n").filter { $0.contains("service=reporting") && $0.contains("restarting") }
            #expect(restarts.count == 3 && restarts.allSatisfy { $0.contains("exit=signal 9 (Killed)") }, "\(restarts)")
            // 250 ms, 500 ms, 1 s: each wait doubles.
            let delays = restarts.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("restart.in=") } }
            #expect(delays == ["restart.in=0.25", "restart.in=0.5", "restart.in=1.0"], "\(delays)")
        }
    }
}
