import CairnTesting
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fault suite's short profile (`make faults` runs the full one): each fault is injected
/// into a running stack under load, and PostgreSQL must then hold exactly the acknowledged
/// events, each once.
@Suite(.serialized) struct FaultTests {
    /// One database server for every fault that stops it; started on first use.
    static let server = Mutex<TestServer?>(nil)

    static func sharedServer() throws -> TestServer {
        try server.withLock { server in
            if let server { return server }
            let started = try TestServer(base: "/tmp/cairn-faults-pg-\(getpid())")
            try started.start()
            server = started
            atexit {
                // The test process ends here: a fast shutdown, then the files go.
                let pid = FaultTests.server.withLock { $0?.pid ?? 0 }
                if pid > 0 { kill(pid, SIGINT) }
                for _ in 0..<100 where pid > 0 && kill(pid, 0) == 0 { usleep(50_000) }
                try? FileManager.default.removeItem(atPath: "/tmp/cairn-faults-pg-\(getpid())")
            }
            return started
        }
    }

    @Test(arguments: Fault.allCases)
    func theAcknowledgedSetSurvives(_ fault: Fault) async throws {
        let seed = UInt64.random(in: 1...999_999)
        let suite = FaultSuite(server: try Self.sharedServer(), profile: .short, seed: seed) { print("[faults] " + $0) }
        let result = try await suite.run(fault)
        print("[faults] seed \(seed)\n" + FaultSuite.table([result]))
        #expect(result.sent > 0)
        #expect(result.acknowledged == result.sent, "every event sent must end up acknowledged (seed \(seed))")
        #expect(result.lost == 0, "acknowledged but not stored (seed \(seed)): \(result.findings)")
        #expect(result.doubled == 0, "stored more than once (seed \(seed)): \(result.findings)")
        #expect(result.extra == 0, "stored but never sent (seed \(seed))")
        #expect(result.problems.isEmpty, "\(result.problems) (seed \(seed))")
    }
}
