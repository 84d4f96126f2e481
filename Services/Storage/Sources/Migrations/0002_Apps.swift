// A shipped migration: never edit it. A change ships as a new migration (CONTRIBUTING.md).

extension Migration {
    /// Apps with their hashed write keys and personal-data policy, and each app's registered attribute types.
    static let apps = Migration(
        version: 2,
        name: "apps",
        statements: [
            #"""
            CREATE TABLE apps (
                token text PRIMARY KEY,
                name text NOT NULL UNIQUE,
                write_key_hash text NOT NULL,
                personal_data text NOT NULL DEFAULT 'hash' CHECK (personal_data IN ('keep', 'hash', 'drop')),
                created_at timestamptz NOT NULL DEFAULT now(),
                key_rotated_at timestamptz
            )
            """#,
            #"""
            CREATE TABLE app_attributes (
                app_token text NOT NULL REFERENCES apps (token) ON DELETE CASCADE,
                name text NOT NULL,
                type text NOT NULL CHECK (type IN ('string', 'number', 'date', 'boolean', 'json')),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app_token, name)
            )
            """#,
        ]
    )
}
