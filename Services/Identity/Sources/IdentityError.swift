import CairnCore

/// Identity's module marker: its errors are ``IdentityError``.
public enum IdentityModule {}

/// An error of identity's forwarding of a batch: a stable code, the parameter at fault by its wire name (the CLI shows
/// its flag), and the reason. The RPC router answers it as an application error.
public typealias IdentityError = ModuleError<IdentityModule>
