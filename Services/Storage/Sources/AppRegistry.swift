import CairnCore
import CairnMethods
import CairnPostgres
import CairnRollups
import CairnWire

/// Apps (tenants) and their settings: token, name, hashed write key, what to do with
/// personal data, and registered attribute types. Every value is a bound parameter.
///
/// Methods served by storage:
/// - `apps.create {name, token?, personal_data?}` → `{name, token, write_key, read_key, personal_data}`;
///   the keys are shown once and stored only as their SHA-256;
/// - `apps.list` → `{rows}`; `apps.get {app}` (name or token) → the app with its attributes;
/// - `apps.authenticate {write_key_hash}` → the app whose write key has that SHA-256;
/// - `apps.rotate_key {app}` → `{name, token, write_key}`; `apps.rotate_read_key {app}` → `{name, token, read_key}`; `apps.configure {app, personal_data?,
///   session_inactivity?, session_max_length?, identify_userlike_by_email?, earliest_event_time?, future_allowance?, retention?}`;
/// - `attributes.set {app, name, type}`; `attributes.list {app}` → `{rows}`.
public enum AppRegistry {
    /// Looks an app up by token or name.
    public static func find(_ app: String, on connection: PostgresConnection) throws(PostgresError) -> JSON? {
        try find(where: "token = $1 OR name = $1 ORDER BY token = $1 DESC", app, on: connection)
    }

    /// Looks an app up by the SHA-256 of its write key (``WriteKey/hash(_:)``): how HTTP
    /// ingest authenticates, without the key itself ever leaving ingest.
    public static func find(writeKeyHash: String, on connection: PostgresConnection) throws(PostgresError) -> JSON? {
        try find(where: "write_key_hash = $1", writeKeyHash, on: connection)
    }

    private static func find(where condition: String, _ value: String, on connection: PostgresConnection) throws(PostgresError) -> JSON? {
        let rows = try connection.execute(
            """
            SELECT token, name, personal_data, created_at, session_inactivity_s, session_max_length_s, identify_userlike_by_email,
                   to_char(event_time_earliest AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS event_time_earliest,
                   event_time_future_s, \(RetentionColumns.sql)
            FROM apps WHERE \(condition) LIMIT 1
            """,
            [value]
        )
        guard let row = rows.firstRow else { return nil }
        let token = row["token"] ?? ""
        var attributes = JSONObject()
        for attribute in try connection.execute("SELECT name, type FROM app_attributes WHERE app_token = $1 ORDER BY name", [token]).namedRows {
            attributes.append(attribute["name"] ?? "", .optional(attribute["type"]))
        }
        return [
            "token": .string(token), "name": .optional(row["name"]), "personal_data": .optional(row["personal_data"]),
            "created_at": .optional(row["created_at"]), "session_inactivity_s": .int(row["session_inactivity_s", as: Int64.self] ?? 1800),
            "session_max_length_s": .int(row["session_max_length_s", as: Int64.self] ?? 86400),
            "identify_userlike_by_email": .bool(row["identify_userlike_by_email", as: Bool.self] ?? false),
            "event_time_earliest": .optional(row["event_time_earliest"]),
            "event_time_future_s": .int(row["event_time_future_s", as: Int64.self] ?? 86400), "attributes": .object(attributes),
            "retention": .optional(
                RetentionColumns.window(in: row)?.description
            ),
        ]
    }

    public static func create(_ params: AppsCreate.Params, on connection: PostgresConnection) throws -> JSON {
        let name = params.name
        let token = params.token ?? name
        do throws(EventError) {
            try AppName.validate(name)
            try AppName.validate(token)
        } catch {
            throw StorageError(.invalidApp, error.description)
        }
        let personalData = try personalDataMode(params.personal_data ?? PersonalDataMode.hash.rawValue)
        let writeKey = WriteKey.generate()
        let readKey = WriteKey.generateReadKey()
        let inserted = try connection.execute(
            """
            INSERT INTO apps (token, name, write_key_hash, read_key_hash, read_key_rotated_at, personal_data)
            VALUES ($1, $2, $3, $4, now(), $5) ON CONFLICT DO NOTHING
            """,
            [token, name, WriteKey.hash(writeKey), WriteKey.hash(readKey), personalData.rawValue]
        )
        guard inserted.affectedRows == 1 else {
            throw StorageError(.appExists, "an app named '\(name)' or with token '\(token)' already exists")
        }
        return [
            "name": .string(name), "token": .string(token), "write_key": .string(writeKey), "read_key": .string(readKey),
            "personal_data": .string(personalData.rawValue),
        ]
    }

    public static func list(on connection: PostgresConnection) throws(PostgresError) -> JSON {
        let rows = try connection.execute(
            """
            SELECT a.name, a.token, a.personal_data, to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at,
                   (SELECT count(*) FROM app_attributes t WHERE t.app_token = a.token) AS attributes
            FROM apps a ORDER BY a.name
            """
        ).namedRows
        return [
            "columns": ["name", "token", "personal_data", "created_at", "attributes"],
            "rows": .array(
                rows.map { row in
                    [
                        "name": .optional(row["name"]), "token": .optional(row["token"]), "personal_data": .optional(row["personal_data"]),
                        "created_at": .optional(row["created_at"]), "attributes": .int(row["attributes", as: Int64.self] ?? 0),
                    ]
                }
            ),
        ]
    }

    public static func rotateKey(_ params: AppParams, on connection: PostgresConnection) throws -> JSON {
        let app = try existing(params.app, on: connection)
        let writeKey = WriteKey.generate()
        try connection.execute("UPDATE apps SET write_key_hash = $2, key_rotated_at = now() WHERE token = $1", [app.token, WriteKey.hash(writeKey)])
        return ["name": .string(app.name), "token": .string(app.token), "write_key": .string(writeKey)]
    }

    /// Issues a new read key (an app made before read keys existed gets its first): the old one
    /// stops reading at once, since the report API looks the key up on every request.
    public static func rotateReadKey(_ params: AppParams, on connection: PostgresConnection) throws -> JSON {
        let app = try existing(params.app, on: connection)
        let readKey = WriteKey.generateReadKey()
        try connection.execute(
            "UPDATE apps SET read_key_hash = $2, read_key_rotated_at = now() WHERE token = $1",
            [app.token, WriteKey.hash(readKey)]
        )
        return ["name": .string(app.name), "token": .string(app.token), "read_key": .string(readKey)]
    }

    public static func configure(_ params: AppsConfigure.Params, on connection: PostgresConnection) throws -> JSON {
        let app = try existing(params.app, on: connection)
        if let mode = params.personal_data {
            try connection.execute("UPDATE apps SET personal_data = $2 WHERE token = $1", [app.token, try personalDataMode(mode).rawValue])
        }
        for (key, value, column) in [
            ("session_inactivity", params.session_inactivity, "session_inactivity_s"),
            ("session_max_length", params.session_max_length, "session_max_length_s"),
        ] {
            guard let text = value else { continue }
            guard let seconds = TimeBound.seconds(text), seconds > 0 else {
                throw StorageError(.invalidSetting, field: key, "must be a length such as 30m or 24h; found '\(text)'")
            }
            // Column names come from the fixed list above; the value is bound.
            try connection.execute("UPDATE apps SET \(column) = $2 WHERE token = $1", [app.token, String(seconds)])
        }
        if let text = params.earliest_event_time {
            guard let earliest = Timestamp(parsing: text), earliest >= AdmissionPolicy.widestEarliest else {
                throw StorageError(
                    .invalidSetting,
                    field: "earliest_event_time",
                    "must be a date or RFC 3339 time from \(AdmissionPolicy.widestEarliest) on; found '\(text)'"
                )
            }
            try connection.execute("UPDATE apps SET event_time_earliest = $2 WHERE token = $1", [app.token, earliest.description])
        }
        if let text = params.future_allowance {
            guard let seconds = TimeBound.seconds(text), seconds <= AdmissionPolicy.widestFutureAllowanceSeconds else {
                throw StorageError(
                    .invalidSetting,
                    field: "future_allowance",
                    "must be a length such as 24h or 7d, at most \(AdmissionPolicy.widestFutureAllowanceSeconds / 86_400)d; found '\(text)'"
                )
            }
            try connection.execute("UPDATE apps SET event_time_future_s = $2 WHERE token = $1", [app.token, String(seconds)])
        }
        if let text = params.retention {
            let forever = ["forever", "none", "off"].contains(text.lowercased())
            guard forever || RetentionWindow(text) != nil else {
                throw StorageError(
                    .invalidSetting,
                    field: "retention",
                    "must be a number of days, weeks, months or years such as 90d, 12w, 13mo or 2y (at most 100y), or forever; found '\(text)'"
                )
            }
            try connection.execute(
                "UPDATE apps SET retention = $2::interval WHERE token = $1",
                [app.token, forever ? nil : RetentionWindow(text)?.interval]
            )
        }
        if let flag = params.identify_userlike_by_email {
            try connection.execute("UPDATE apps SET identify_userlike_by_email = $2 WHERE token = $1", [app.token, flag ? "true" : "false"])
        }
        return try find(app.token, on: connection) ?? .null
    }

    public static func setAttribute(_ params: AttributesSet.Params, on connection: PostgresConnection) throws -> JSON {
        let app = try existing(params.app, on: connection)
        let name = params.name
        guard !name.isEmpty, name.utf8.count <= 128 else {
            throw StorageError(.invalidParams, field: "name", "must name the attribute (1 to 128 characters)")
        }
        guard let type = AttributeType(rawValue: params.type) else {
            throw StorageError(.invalidType, field: "type", "must be one of \(AttributeType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try connection.transaction { () throws(PostgresError) in
            // The follower folds under the same lock: a number's values are filled up to its checkpoint, and it adds the rest.
            try Rollups.lock(app: app.token, on: connection)
            let before = try connection.execute("SELECT type FROM app_attributes WHERE app_token = $1 AND name = $2", [app.token, name]).firstRow?[
                "type"
            ]
            try connection.execute(
                """
                INSERT INTO app_attributes (app_token, name, type) VALUES ($1, $2, $3)
                ON CONFLICT (app_token, name) DO UPDATE SET type = EXCLUDED.type, updated_at = now()
                """,
                [app.token, name, type.rawValue]
            )
            if before != type.rawValue {
                let through = try FollowerCheckpoint.read(app: app.token, on: connection)
                try Rollups.attributeChanged(app: app.token, name: name, isNumber: type == .number, through: through, on: connection)
            }
        }
        return ["app": .string(app.name), "name": .string(name), "type": .string(type.rawValue)]
    }

    public static func listAttributes(_ params: AppParams, on connection: PostgresConnection) throws -> JSON {
        let app = try existing(params.app, on: connection)
        let rows = try connection.execute(
            "SELECT name, type, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated_at FROM app_attributes WHERE app_token = $1 ORDER BY name",
            [app.token]
        ).namedRows
        return [
            "columns": ["name", "type", "updated_at"],
            "rows": .array(rows.map { ["name": .optional($0["name"]), "type": .optional($0["type"]), "updated_at": .optional($0["updated_at"])] }),
        ]
    }

    private static func existing(_ app: String, on connection: PostgresConnection) throws -> (token: String, name: String) {
        guard let found = try find(app, on: connection), let token = found["token"]?.stringValue, let name = found["name"]?.stringValue else {
            throw StorageError.unknownApp(app)
        }
        return (token, name)
    }

    private static func personalDataMode(_ text: String) throws(StorageError) -> PersonalDataMode {
        guard let mode = PersonalDataMode(rawValue: text) else {
            throw StorageError(.invalidSetting, field: "personal_data", "must be one of keep, hash, drop; found '\(text)'")
        }
        return mode
    }
}
