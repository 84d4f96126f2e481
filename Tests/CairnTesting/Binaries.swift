import Foundation

/// Where `swift build` put the executables the end-to-end tests run.
public enum Binaries {
    /// The build products directory: the test bundle sits next to the executables.
    public static var directory: String {
        if let override = ProcessInfo.processInfo.environment["CAIRN_BIN_DIR"] { return override }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidate = bundle.deletingLastPathComponent()
        // On Linux the test runner is `.build/<triple>/debug/CairnPackageTests.xctest`.
        while candidate.path != "/" {
            if FileManager.default.isExecutableFile(atPath: candidate.path + "/cairn-supervisor") { return candidate.path }
            candidate = candidate.deletingLastPathComponent()
        }
        return bundle.deletingLastPathComponent().path
    }

    public static func path(_ name: String) -> String { directory + "/" + name }
}
