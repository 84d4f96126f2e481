import CairnCore

/// Ingest's module marker: its errors are ``IngestError``.
public enum IngestModule {}

/// An error of ingest: the spool, admission and its configuration: a stable code, the parameter at fault by its wire name (the CLI shows
/// its flag), and the reason. The RPC router answers it as an application error.
public typealias IngestError = ModuleError<IngestModule>
