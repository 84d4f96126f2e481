import CairnCore

/// The service host's module marker: its errors are ``ServiceError``.
public enum ServiceHostModule {}

/// An error of a service's start-up: its environment or settings are refused. A
/// `configuration` code makes the service exit with `EX_CONFIG`.
public typealias ServiceError = ModuleError<ServiceHostModule>
