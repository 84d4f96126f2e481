import AsyncHTTPClient
import CairnCore
import CairnTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `make install`'s script into a temporary prefix, and the stack started from there: the
/// installed supervisor finds its services and its stack file, and the installed reporting
/// service its console templates.
@Suite struct InstallTests {
    @Test func anInstallationUnderATemporaryPrefixRunsTheStack() async throws {
        let prefix = "/tmp/cairn-install-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let install = try await Self.run(TestStack.repositoryRoot + "/scripts/install.sh", ["--prefix", prefix, "--from", Binaries.directory])
        #expect(install.status == 0, "\(install.output)")
        let files = FileManager.default
        for name in ["cairn", "cairn-supervisor"] {
            #expect(try files.destinationOfSymbolicLink(atPath: "\(prefix)/bin/\(name)") == "../libexec/cairn/\(name)")
        }
        for name in ["cairn-ingest", "cairn-identity", "cairn-storage", "cairn-reporting", "cairn-export"] {
            #expect(files.isExecutableFile(atPath: "\(prefix)/libexec/cairn/\(name)"))
        }
        #expect(files.fileExists(atPath: "\(prefix)/libexec/cairn/Cairn_CairnConsole.resources/Templates/page.mustache"))
        let shipped = try #require(files.contents(atPath: TestStack.repositoryRoot + "/compose/default.json"))
        #expect(files.contents(atPath: "\(prefix)/etc/cairn/stack.json") == shipped)

        // The unit names this installation's paths and a dedicated account.
        let unit = try await Self.run("\(prefix)/bin/cairn-supervisor", ["--print-systemd-unit"])
        #expect(unit.status == 0)
        let lines = Set(unit.output.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"ExecStart="\#(prefix)/bin/cairn-supervisor" --stack "\#(prefix)/etc/cairn/stack.json" --data-dir "/var/lib/cairn""#))
        #expect(lines.contains("User=cairn"))
        #expect(lines.contains("StateDirectory=cairn"))
        #expect(lines.contains(#"Environment="CAIRN_DATA_DIR=/var/lib/cairn""#))
        #expect(lines.contains("EnvironmentFile=-\(prefix)/etc/cairn/cairn.env"))
        let other = try await Self.run("\(prefix)/bin/cairn-supervisor", ["--print-systemd-unit", "--user", "events", "--data-dir", "/srv/cairn"])
        #expect(other.output.contains("User=events\n"))
        #expect(other.output.contains("WorkingDirectory=/srv/cairn\n"))
        #expect(!other.output.contains("StateDirectory="))
        // An account name is one word: nothing a newline could add to the unit.
        let injected = try await Self.run("\(prefix)/bin/cairn-supervisor", ["--print-systemd-unit", "--user", "cairn\nExecStartPre=/bin/true"])
        #expect(injected.status != 0 && !injected.output.contains("[Service]"))

        // The installed stack, on the installed stack file (no --stack), with the installed CLI.
        let stack = try await TestStack(installation: prefix + "/bin")
        do {
            #expect(try await stack.cli(["apps", "create", "acme"]).status == 0)
            let file = stack.directory + "/events.jsonl"
            try Data(#"{"event":"installed","user_id":"u1","timestamp":"2026-01-05T10:00:00Z"}"#.utf8).write(to: URL(fileURLWithPath: file))
            let ingest = try await stack.cli(["ingest", file, "--app", "acme"])
            #expect(ingest.status == 0, "\(ingest.stderr)")
            #expect(try await stack.waitForCount(app: "acme", 1) == 1)
            // The console's login page renders from the installed templates.
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            defer { _ = client.shutdown() }
            let response = try await client.execute(HTTPClientRequest(url: try await stack.consoleURL() + "/login"), timeout: .seconds(10))
            #expect(response.status == .ok)
            let page = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(page.contains("<form"))
        } catch {
            _ = try? await stack.stop()
            throw error
        }
        #expect(try await stack.stop() == 0)

        // Installing again keeps an operator's stack file.
        try Data("{\"edited\": true}".utf8).write(to: URL(fileURLWithPath: "\(prefix)/etc/cairn/stack.json"))
        #expect(try await Self.run(TestStack.repositoryRoot + "/scripts/install.sh", ["--prefix", prefix, "--from", Binaries.directory]).status == 0)
        #expect(files.contents(atPath: "\(prefix)/etc/cairn/stack.json") == Data("{\"edited\": true}".utf8))
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = "/tmp/cairn-install-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: out) }
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: out)
        try process.run()
        let status = await process.waitForExit()
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }
}
