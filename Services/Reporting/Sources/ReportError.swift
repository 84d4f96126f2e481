import CairnCore

/// Reporting's module marker: its errors are ``ReportError``.
public enum ReportingModule {}

/// An error of a report: a stable code, the parameter at fault by its wire name (the CLI shows
/// its flag), and the reason. The RPC router answers it as an application error.
public typealias ReportError = ModuleError<ReportingModule>
