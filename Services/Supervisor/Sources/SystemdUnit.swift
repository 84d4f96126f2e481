import Foundation

/// Where this supervisor's executables live: a checkout's build directory, or an installation
/// made by `make install` (`PREFIX/libexec/cairn`, linked from `PREFIX/bin`).
struct InstallLayout: Sendable {
    /// The directory of the running executable, links resolved: its siblings are the services.
    var executables: String
    /// `PREFIX` of an installation; nil when running from a build directory.
    var prefix: String?

    static func current() -> InstallLayout {
        let executables = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        return InstallLayout(executables: executables)
    }

    init(executables: String) {
        self.executables = executables
        let suffix = "/libexec/cairn"
        prefix = executables.hasSuffix(suffix) ? String(executables.dropLast(suffix.count)) : nil
    }

    /// The stack file run when `--stack` is not given.
    var defaultStack: String {
        prefix.map { $0 + "/etc/cairn/stack.json" } ?? "compose/default.json"
    }

    /// The command a unit starts: the installation's `bin` link, or the build's executable.
    var supervisor: String {
        (prefix.map { $0 + "/bin" } ?? executables) + "/cairn-supervisor"
    }
}

/// The systemd unit `cairn-supervisor --print-systemd-unit` prints: the stack as a dedicated
/// unprivileged account, its data in `/var/lib/cairn` (made by systemd, mode 0700), sandboxed
/// to that directory, stopped with the supervisor's own graceful shutdown.
struct SystemdUnit: Sendable {
    static let dataDirectory = "/var/lib/cairn"

    var supervisor: String
    var stack: String
    var dataDirectory: String
    var user: String

    /// A POSIX account name, as `useradd` takes it: the unit names it twice, and a newline in it
    /// would add lines of its own.
    static func isAccountName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 32 else { return false }
        let lower = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz_")
        let rest = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789_-")
        return lower.contains(first) && name.unicodeScalars.allSatisfy { rest.contains($0) }
    }

    /// A value as systemd reads a quoted word: in double quotes, with `\` and `"` escaped, and `%`
    /// doubled (systemd's specifier character).
    static func quoted(_ value: String) -> String {
        "\""
            + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(
                of: "%",
                with: "%%"
            ) + "\""
    }

    var text: String {
        let stateDirectory = dataDirectory.hasPrefix("/var/lib/") ? String(dataDirectory.dropFirst("/var/lib/".count)) : nil
        let environmentFile = URL(fileURLWithPath: stack).deletingLastPathComponent().appendingPathComponent("cairn.env").path
        var lines = [
            "# Cairn: install with `make install`, create the account once with",
            "#   useradd --system --home-dir \(dataDirectory) --shell /usr/sbin/nologin \(user)",
            "# then: cairn-supervisor --print-systemd-unit > /etc/systemd/system/cairn.service",
            "#       systemctl daemon-reload && systemctl enable --now cairn",
            "# Settings and secrets (CAIRN_DATABASE_URL, CAIRN_METRICS_TOKEN, keys a destination",
            "# names) go in \(environmentFile), one VAR=value a line.",
            "[Unit]",
            "Description=Cairn event pipeline (supervisor and services)",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            "User=\(user)",
            "Group=\(user)",
        ]
        if let stateDirectory {
            lines += ["StateDirectory=\(stateDirectory)", "StateDirectoryMode=0700"]
        }
        lines += [
            // A path setting takes the rest of the line as it is; only `%` needs escaping.
            "WorkingDirectory=\(dataDirectory.replacingOccurrences(of: "%", with: "%%"))",
            "Environment=\(Self.quoted("CAIRN_DATA_DIR=" + dataDirectory))",
            "EnvironmentFile=-\(environmentFile.replacingOccurrences(of: "%", with: "%%"))",
            "ExecStart=\(Self.quoted(supervisor)) --stack \(Self.quoted(stack)) --data-dir \(Self.quoted(dataDirectory))",
            // The supervisor stops its services in order on SIGTERM; systemd kills what is left.
            "KillMode=mixed",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=60",
            "Restart=on-failure",
            "RestartSec=5",
            "LimitNOFILE=65536",
            "UMask=0077",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ReadWritePaths=\(Self.quoted(dataDirectory))",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
