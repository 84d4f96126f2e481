import CairnCore

/// The services a method can live on; each listens on `<run directory>/<name>.sock`.
public enum ServiceName: String, Sendable, CaseIterable {
    case supervisor, ingest, identity, storage, reporting, export
}

/// A method of a Cairn service, as one type both sides share: its wire name, the service that
/// answers it, its parameters and result, and how long a caller waits for it. The server
/// registers the type (``RPCRouter/register(_:_:)``), the client calls it
/// (``RPCClient/call(_:_:)``), and `docs/rpc.md` is generated from it: a name is written once.
public protocol RPCMethod: Sendable {
    /// Decoded from `params` in one place (the router), with an `invalid_params` error that
    /// names the field when they do not fit.
    associatedtype Params: Codable & Sendable
    associatedtype Result: Codable & Sendable

    static var name: String { get }
    static var service: ServiceName { get }
    /// One sentence for the reference.
    static var summary: String { get }
    /// How long a caller waits for the answer before giving up on the connection.
    static var deadline: Duration { get }
}

extension RPCMethod {
    public static var deadline: Duration { RPCClient.defaultDeadline }
}

/// The parameters of a method that takes none.
public struct NoParams: Codable, Sendable, Equatable {
    public init() {}
}
