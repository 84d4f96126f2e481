import CairnCore

/// One step of Cairn's PostgreSQL schema.
///
/// A migration never changes once it ships: databases that applied it keep what it said then,
/// so an edit would leave them different from fresh ones without anyone noticing. A change
/// ships as a new migration (CONTRIBUTING.md, "Adding a migration"). Each lives in its own file
/// under `Migrations/`, written out as plain SQL with nothing spliced in, and `MigrationTests`
/// pins each one's ``checksum``.
public struct Migration: Sendable {
    /// Applied in ascending order; recorded in `cairn_migrations`.
    public let version: Int
    public let name: String
    /// Run in order, in one transaction.
    public let statements: [String]

    /// SHA-256 (hex) of the statements joined by `"\n;\n"`.
    public var checksum: String {
        SHA256.hex(Array(statements.joined(separator: "\n;\n").utf8))
    }
}
