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
    ///
    /// An existing directory that others can write to is refused, not tightened: anyone who
    /// could write there may already have swapped a socket for their own.
    /// - Throws: ``WireError`` with code `run_directory` when it cannot, or will not.
    public static func prepare(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        var created = false
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                created = true
            } else if errno != EEXIST {
                throw WireError(.runDirectory, "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw WireError(.runDirectory, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o7777
        if !created, mode & 0o022 != 0 {
            throw WireError(
                .runDirectory,
                "the socket directory \(path) is group- or world-writable (mode \(String(mode, radix: 8))); "
                    + "refusing to start: run `chmod 700 \(path)` or remove it, and check nobody replaced a socket in it"
            )
        }
        guard chmod(path, 0o700) == 0 else {
            throw WireError(.runDirectory, "cannot set mode 0700 on \(path): \(String(cString: strerror(errno)))")
        }
    }
}
