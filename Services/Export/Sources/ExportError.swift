import CairnCore

/// Export's module marker: its errors are ``ExportError``.
public enum ExportModule {}

/// An error of export's methods, destinations and triggers: a stable code, the parameter at fault by its wire name (the CLI shows
/// its flag), and the reason. The RPC router answers it as an application error.
public typealias ExportError = ModuleError<ExportModule>
