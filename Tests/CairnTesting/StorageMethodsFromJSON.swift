import CairnCore
import CairnIdentity
import CairnMethods
import CairnPostgres
import CairnStorage

// Tests call storage's methods with parameters written as JSON, as a client sends them; they
// are decoded here exactly as the RPC router decodes them.

extension AppRegistry {
    public static func create(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try create(JSONCoding.decode(AppsCreate.Params.self, from: params), on: connection)
    }

    public static func configure(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try configure(JSONCoding.decode(AppsConfigure.Params.self, from: params), on: connection)
    }

    public static func rotateKey(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try rotateKey(JSONCoding.decode(AppParams.self, from: params), on: connection)
    }

    public static func setAttribute(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try setAttribute(JSONCoding.decode(AttributesSet.Params.self, from: params), on: connection)
    }
}

extension UserErasure {
    public static func delete(_ params: JSON, on connection: PostgresConnection, followerWait: Duration = FollowerWait.underLock) throws -> JSON {
        try delete(JSONCoding.decode(UsersDelete.Params.self, from: params), on: connection, followerWait: followerWait)
    }
}

extension UserMerge {
    public static func merge(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try merge(JSONCoding.decode(UsersMerge.Params.self, from: params), on: connection)
    }
}

extension IdentityContext {
    public static func load(_ params: JSON, on connection: PostgresConnection) throws -> JSON {
        try load(
            Request(
                app_token: params["app_token"]?.stringValue ?? "",
                user_ids: params["user_ids"]?.arrayValue?.compactMap(\.stringValue),
                anonymous_ids: params["anonymous_ids"]?.arrayValue?.compactMap(\.stringValue),
                cached: params["cached"]?.arrayValue?.compactMap(\.stringValue),
                new_aliases: params["new_aliases"]?.arrayValue
            ),
            on: connection
        )
    }
}
