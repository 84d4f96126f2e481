import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process a test starts beside the stack (moto's S3 server, an SMTP server), its output in a
/// log file; ``stop()`` kills it with SIGKILL: it is a throwaway, and a child of the test
/// process may start with signals blocked, so a gentler signal could be ignored.
public final class HelperProcess: @unchecked Sendable {
    public let process: Process
    public let logPath: String

    public init(_ executable: String, _ arguments: [String], logPath: String) throws {
        self.logPath = logPath
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }

    /// What it has written so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until `ready` holds, the process exits, or `limit` passes; true when `ready` held.
    public func wait(upTo limit: Duration, until ready: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline {
            if ready() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return ready()
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
    }
}
