import CairnTesting
import Foundation

// `make faults`: every fault in the full profile, then one table. Options: `--short` (the
// profile `make test` runs), `--seed N` (repeat a run's random moments), `--only NAME`
// (a fault by its table name, e.g. "spool disk full"). Exits 1 unless every row holds.
let arguments = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
let profile = arguments.contains("--short") ? FaultProfile.short : FaultProfile.full
let seed = option("--seed").flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999)
let faults = option("--only").map { name in Fault.allCases.filter { $0.rawValue == name } } ?? Fault.allCases
guard !faults.isEmpty else {
    say("no fault is named \(option("--only") ?? ""); the faults are: \(Fault.allCases.map(\.rawValue).joined(separator: ", "))")
    exit(2)
}

/// Each line as it happens, unbuffered, even into a file.
@Sendable func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
say("faults: \(profile.name) profile, seed \(seed)")
let server = try TestServer(base: "/tmp/cairn-faults-pg-\(getpid())")
try server.start()
let suite = FaultSuite(server: server, profile: profile, seed: seed) { line in say("  " + line) }
var results: [FaultResult] = []
for fault in faults {
    say("\n== \(fault)")
    do {
        let result = try await suite.run(fault)
        for problem in result.problems { say("  PROBLEM: \(problem)") }
        results.append(result)
    } catch {
        say("  ERROR: \(error)")
        var failed = FaultResult(fault: fault)
        failed.problems = ["\(error)"]
        results.append(failed)
    }
}
await server.remove()
say("\nfaults: \(profile.name) profile, seed \(seed)")
say(FaultSuite.table(results))
exit(results.allSatisfy(\.passed) ? 0 : 1)
