/// What normalising a record needs to know besides the record: which app it is for, when
/// it arrived, and that app's settings.
public struct IngestContext: Sendable {
    /// The app's token: the `app_token` every event is stored under.
    public var appToken: String
    public var receivedAt: Timestamp
    /// What to do with personal data fields (Userlike's `client_email`, `client_name`). Defaults to `.hash`.
    public var personalData: PersonalDataMode
    /// The app's registered attribute types (User.com's event attributes).
    public var attributes: AttributeRegistry
    /// Whether a Userlike contact's `client_email` identifies them as a user. Defaults to false.
    public var identifyUserlikeByEmail: Bool
    /// The event times the app accepts.
    public var admission: AdmissionPolicy

    public init(
        appToken: String,
        receivedAt: Timestamp,
        personalData: PersonalDataMode = .hash,
        attributes: AttributeRegistry = AttributeRegistry(),
        identifyUserlikeByEmail: Bool = false,
        admission: AdmissionPolicy = AdmissionPolicy()
    ) {
        self.appToken = appToken
        self.receivedAt = receivedAt
        self.personalData = personalData
        self.attributes = attributes
        self.identifyUserlikeByEmail = identifyUserlikeByEmail
        self.admission = admission
    }
}

/// How personal data in an input record is stored.
public enum PersonalDataMode: String, Sendable, CaseIterable {
    /// Stored as sent.
    case keep
    /// Stored as the lowercase hex SHA-256 of the trimmed, lower-cased value: still joinable, not readable.
    case hash
    /// Not stored.
    case drop

    /// The value to store for `value` under this mode, or nil to store nothing.
    public func apply(_ value: String) -> String? {
        switch self {
        case .keep: return value
        case .drop: return nil
        case .hash: return SHA256.hex(Array(value.trimmingWhitespace().lowercased().utf8))
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
