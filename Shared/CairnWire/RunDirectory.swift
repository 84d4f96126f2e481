#if canImport(Glibc)
import Glibc
#endif

/// The runtime directory that holds every service's socket: mode 0700, sockets 0600.
public enum RunDirectory {
    /// The socket file of `service` (e.g. `ingest`) in `runDirectory`.
    public static func socketPath(_ runDirectory: String, service: String) -> String {
        (runDirectory.hasSuffix("/") ? runDirectory : runDirectory + "/") + service + ".sock"
    }

    /// Creates `path` (and its parents) if needed and makes it mode 0700.
    /// - Throws: ``WireError`` with code `run_directory` when it cannot.
    public static func prepare(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw WireError(.runDirectory, "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        guard chmod(path, 0o700) == 0 else {
            throw WireError(.runDirectory, "cannot set mode 0700 on \(path): \(String(cString: strerror(errno)))")
        }
    }
}
