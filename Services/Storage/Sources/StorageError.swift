import CairnCore

/// Storage's module marker: its errors are ``StorageError``.
public enum StorageModule {}

/// An error of storage's registry and identity methods: a stable code, the parameter at fault
/// by its wire name, and the reason. The RPC router answers it as an application error.
public typealias StorageError = ModuleError<StorageModule>
