import CairnCore
import Foundation
import Logging
import Synchronization
import Testing

@testable import CairnSupervisor

#if canImport(Glibc)
import Glibc
#endif

@Suite struct StackFileTests {
    @Test func ordersServicesByDependency() throws {
        let stack = try StackFile.parse(
            try JSONParser.parse(
                """
                {"services": [{"name": "ingest", "depends_on": ["identity"]}, {"name": "identity", "depends_on": ["storage"]},
                              {"name": "storage"}, {"name": "reporting", "depends_on": ["storage"], "restart": "on-failure"}]}
                """
            ),
            origin: "test"
        )
        #expect(stack.services.map(\.name) == ["storage", "identity", "ingest", "reporting"])
        #expect(stack.services[0].executable == "cairn-storage")
        #expect(stack.services[3].restart == .onFailure)
        #expect(stack.services.allSatisfy { $0.settings == nil })
    }

    @Test func keepsAServicesSettingsForIt() throws {
        let stack = try StackFile.parse(
            try JSONParser.parse(
                """
                {"services": [{"name": "export", "settings": {"destinations": [{"name": "w", "app": "acme"}]}}]}
                """
            ),
            origin: "test"
        )
        #expect(stack.services[0].settings?["destinations"]?.arrayValue?.first?["app"] == "acme")
    }

    @Test(arguments: [
        #"{"services": []}"#,
        #"{"services": [{"name": "a", "depends_on": ["b"]}]}"#,
        #"{"services": [{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}]}"#,
        #"{"services": [{"name": "a"}, {"name": "a"}]}"#,
        #"{"services": [{"name": "a", "restart": "sometimes"}]}"#,
        #"{"services": [{"name": "a", "env": {"X": 1}}]}"#,
        #"{"services": [{"name": "a", "settings": [1]}]}"#,
        // A name names a socket and a spool file: no paths, no capitals, no reserved names.
        #"{"services": [{"name": "../ingest"}]}"#,
        #"{"services": [{"name": "Ingest"}]}"#,
        #"{"services": [{"name": "supervisor"}]}"#,
        #"{"services": [{"name": "postgres"}]}"#,
    ])
    func refusesBrokenStacks(_ text: String) throws {
        let value = try JSONParser.parse(text)
        #expect(throws: SupervisorError.self) { try StackFile.parse(value, origin: "test") }
    }

    @Test func anExecutableMayRunAsSeveralNamedInstances() throws {
        let stack = try StackFile.parse(
            try JSONParser.parse(
                """
                {"services": [{"name": "ingest"}, {"name": "ingest-2", "executable": "cairn-ingest"}]}
                """
            ),
            origin: "test"
        )
        #expect(stack.services.map(\.executable) == ["cairn-ingest", "cairn-ingest"])
        #expect(stack.services.map(\.name) == ["ingest", "ingest-2"])
    }

    @Test func theShippedStackFileLoads() throws {
        let stack = try StackFile.load(
            path: #filePath.replacingOccurrences(of: "Tests/CairnSupervisorTests/SupervisorTests.swift", with: "compose/default.json")
        )
        #expect(stack.services.map(\.name) == ["storage", "identity", "ingest", "reporting", "export"])
    }
}

@Suite struct ChildProcessTests {
    @Test func forwardsOutputAndReportsExitStatus() async throws {
        let lines = Mutex<[String]>([])
        let child = try ChildProcess(
            name: "sh",
            arguments: ["/bin/sh", "-c", "echo one; echo two >&2; printf three; exit 3"],
            environment: [:]
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await child.waitForExit() == .exited(3))
        // Output is read on its own thread; give it a moment to drain.
        for _ in 0..<100 where lines.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(Set(lines.withLock { $0 }) == ["one", "two", "three"])
    }

    @Test func reportsSignals() async throws {
        let child = try ChildProcess(name: "sleep", arguments: ["/bin/sleep", "30"], environment: [:]) { _ in }
        child.send(SIGKILL)
        #expect(await child.waitForExit() == .signalled(SIGKILL))
    }

    @Test func aMissingExecutableIsAClearError() {
        #expect(throws: SupervisorError.self) {
            _ = try ChildProcess(name: "x", arguments: ["/nonexistent/program"], environment: [:]) { _ in }
        }
    }
}

/// What a killed supervisor left running is stopped by the next one, and only that.
@Suite struct ChildRegistryTests {
    @Test func stopsWhatAKilledSupervisorLeftAndNothingElse() async throws {
        let directory = "/tmp/cairn-registry-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let left = try ChildProcess(name: "left", arguments: ["/bin/sleep", "60"], environment: [:]) { _ in }
        let bystander = try ChildProcess(name: "bystander", arguments: ["/bin/sleep", "60"], environment: [:]) { _ in }
        let start = try #require(ChildRegistry.startTime(of: left.pid))
        let registry = ChildRegistry(runDirectory: directory)
        // The bystander's pid with another start time stands for a pid reused since: never signalled.
        registry.write([
            .init(name: "left", pid: left.pid, startTime: start, stopSignal: SIGTERM),
            .init(name: "reused", pid: bystander.pid, startTime: start &+ 12345, stopSignal: SIGTERM),
        ])
        #expect(registry.leftovers().map(\.name) == ["left"])
        await registry.stopLeftovers(deadline: .seconds(5), logger: Logger(label: "test"))
        #expect(await left.waitForExit() == .signalled(SIGTERM))
        #expect(ChildRegistry.startTime(of: bystander.pid) != nil, "a process that merely reuses a recorded pid is left alone")
        #expect(registry.leftovers().isEmpty)
        bystander.send(SIGKILL)
        _ = await bystander.waitForExit()
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// The supervision state machine, one transition at a time, with a clock the test moves.
@Suite struct SupervisedChildTests {
    let start = ContinuousClock.now

    func child() -> SupervisedChild { SupervisedChild(flappingAfter: 3, stableAfter: .seconds(30)) }

    func process() async throws -> ChildProcess {
        let process = try ChildProcess(name: "true", arguments: ["/bin/true"], environment: [:]) { _ in }
        _ = await process.waitForExit()
        return process
    }

    @Test func startsRunsAndReportsUptime() async throws {
        var child = child()
        #expect(child.state == .starting && child.statusName(at: start) == "starting")
        #expect(child.runningProcess == nil && child.uptime(at: start) == nil)
        let process = try await process()
        child.started(process, at: start, stopSignal: SIGINT)
        #expect(child.state == .running(pid: process.pid, since: start))
        #expect(child.runningProcess?.pid == process.pid && child.stopSignal == SIGINT)
        #expect(child.uptime(at: start + .seconds(42)) == 42)
        #expect(child.statusName(at: start + .seconds(1)) == "running")
    }

    @Test func aCrashUnderAlwaysRestartsAndACleanExitUnderOnFailureDoesNot() async throws {
        let process = try await process()
        var always = child()
        always.started(process, at: start, stopSignal: SIGTERM)
        #expect(
            always.exited(.exited(0), at: start + .seconds(1), stackStopping: false, policy: .always) == .restart(stableRun: false, flapping: false)
        )
        #expect(always.state == .restarting(after: .exited(0)) && always.restarts == 1)
        #expect(always.statusName(at: start) == "restarting" && always.runningProcess == nil)

        var onFailure = child()
        onFailure.started(process, at: start, stopSignal: SIGTERM)
        #expect(onFailure.exited(.exited(0), at: start + .seconds(1), stackStopping: false, policy: .onFailure) == .leaveDown)
        #expect(onFailure.state == .exited(.exited(0)) && onFailure.statusName(at: start) == "exited" && onFailure.restarts == 0)

        onFailure.started(process, at: start, stopSignal: SIGTERM)
        #expect(
            onFailure.exited(.signalled(SIGKILL), at: start + .seconds(1), stackStopping: false, policy: .onFailure)
                == .restart(stableRun: false, flapping: false)
        )
        #expect(onFailure.lastExit == .signalled(SIGKILL))
    }

    @Test func aStoppingStackLeavesEveryChildDown() async throws {
        var child = child()
        child.started(try await process(), at: start, stopSignal: SIGTERM)
        #expect(child.exited(.signalled(SIGTERM), at: start + .seconds(1), stackStopping: true, policy: .always) == .leaveDown)
        #expect(child.state == .stopped(.signalled(SIGTERM)) && child.statusName(at: start) == "stopped" && child.restarts == 0)
    }

    @Test func quickExitsInARowAreFlappingUntilOneRunOutlastsTheStableTime() async throws {
        let process = try await process()
        var child = child()
        var now = start
        var steps: [SupervisedChild.NextStep] = []
        for _ in 0..<3 {
            child.started(process, at: now, stopSignal: SIGTERM)
            now = now + .seconds(1)
            steps.append(child.exited(.exited(1), at: now, stackStopping: false, policy: .always))
        }
        #expect(
            steps == [
                .restart(stableRun: false, flapping: false), .restart(stableRun: false, flapping: false), .restart(stableRun: false, flapping: true),
            ]
        )
        #expect(child.statusName(at: now) == "flapping")
        // Running again, it stays "flapping" until it has run the stable time.
        child.started(process, at: now, stopSignal: SIGTERM)
        #expect(child.statusName(at: now + .seconds(29)) == "flapping")
        #expect(child.statusName(at: now + .seconds(31)) == "running")
        // An exit after a stable run starts the count and the backoff over.
        #expect(child.exited(.exited(1), at: now + .seconds(31), stackStopping: false, policy: .always) == .restart(stableRun: true, flapping: false))
        #expect(child.quickExits == 0 && child.restarts == 4 && child.lastExit == .exited(1))
    }

    @Test func aChildThatCannotBeSpawnedIsFailed() {
        var child = child()
        child.failedToStart("no such file")
        #expect(child.state == .failedToStart("no such file") && child.statusName(at: start) == "failed")
        #expect(!child.isRunning && child.runningProcess == nil)
    }
}
