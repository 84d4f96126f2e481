/// The 25 event kinds UserGuiding emits (UserGuiding's webhook guide), with each payload field, its type, and
/// whether it is required; plus the Title Case name each kind has as a Segment source
/// (UserGuiding's Segment guide, or the same rule for the kinds UserGuiding's Segment guide does not list).
///
/// Canonical form: a `track` event named with the Title Case name, with the payload's
/// fields under their snake_case names (UserGuiding's Segment guide's property names). Ids are strings, as
/// UserGuiding's webhook guide types them; UserGuiding's Segment guide's integer ids are accepted and stored as strings.
public enum UserGuidingCatalog {
    public enum FieldType: Sendable, Equatable {
        case string
        /// An id: a string in UserGuiding's webhook guide, an int in UserGuiding's Segment guide.
        case identifier
        case integer
        case oneOf([String])
    }

    public struct Field: Sendable {
        /// The payload name (UserGuiding's webhook guide), e.g. `guideId`.
        public let name: String
        /// The property name (UserGuiding's Segment guide), e.g. `guide_id`.
        public let snakeName: String
        public let type: FieldType
        public let required: Bool
    }

    public struct Kind: Sendable {
        /// The name in UserGuiding's payload documentation, e.g. `guide started`.
        public let name: String
        /// The canonical and Segment name, e.g. `Guide Started`.
        public let title: String
        public let fields: [Field]
        /// Whether UserGuiding's Segment guide (Segment's UserGuiding source) lists this event.
        public let inSegmentSource: Bool
    }

    /// Button `action` values.
    public static let buttonActions = [
        "link", "guide", "next", "prev", "step", "finish", "dismiss-hotspot", "close-hotspot", "js", "dismiss-guide", "copy", "survey",
    ]
    /// `emojiScore` values for survey answers.
    public static let surveyEmojiScores = ["Positive", "Slightly Positive", "Neutral", "Slightly Negative", "Negative"]
    /// `emojiScore` values for product updates and knowledge base feedback.
    public static let feedbackEmojiScores = ["Positive", "Neutral", "Negative"]
    /// `questionType` values. The seed writes both `Emoji Rating` and `Emoji Rating (3)`/`(5)`.
    public static let ratingQuestionTypes = ["Star Rating", "Number Rating (5)", "Number Rating (10)", "NPS Rating"]
    public static let emojiQuestionTypes = ["Emoji Rating", "Emoji Rating (3)", "Emoji Rating (5)", "Thumbs Up/Down"]
    public static let questionTypes = ratingQuestionTypes + emojiQuestionTypes + ["Multiple Choice", "Written Feedback"]

    private static func field(_ name: String, _ type: FieldType = .string, required: Bool = true) -> Field {
        Field(name: name, snakeName: snakeCase(name), type: type, required: required)
    }

    /// camelCase → snake_case, as UserGuiding's Segment guide names the properties (`checklistItemUrl` → `checklist_item_url`).
    static func snakeCase(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }

    private static let pageUrl = field("pageUrl")
    private static let guide = [field("guideId", .identifier), field("guideName")]
    private static let hotspot = [
        field("hotspotGroupId", .identifier), field("hotspotGroupName"), field("hotspotId", .identifier), field("hotspotTitle"),
    ]
    private static let button = [field("buttonId", .identifier), field("type"), field("action", .oneOf(buttonActions)), field("ctaText")]
    private static let checklist = [field("checklistId", .identifier), field("checklistName")]
    private static let resourceCenter = [field("resourceCenterId", .identifier), field("resourceCenterName")]
    private static let survey = [field("surveyId", .identifier), field("surveyName")]
    private static let thread = [field("threadId", .identifier)]
    private static let assistantMessage = thread + [field("role", .oneOf(["assistant"])), field("message"), pageUrl]

    public static let kinds: [Kind] = [
        Kind(name: "guide started", title: "Guide Started", fields: guide + [pageUrl], inSegmentSource: true),
        Kind(name: "guide completed", title: "Guide Completed", fields: guide + [pageUrl], inSegmentSource: true),
        Kind(name: "guide button click", title: "Guide Button Click", fields: guide + [pageUrl, field("step")] + button, inSegmentSource: false),
        Kind(name: "hotspot interacted", title: "Hotspot Interacted", fields: hotspot + [pageUrl], inSegmentSource: true),
        Kind(name: "hotspot button click", title: "Hotspot Button Click", fields: hotspot + button + [pageUrl], inSegmentSource: false),
        Kind(
            name: "banner button click",
            title: "Banner Button Click",
            fields: [field("bannerId", .identifier), field("bannerName"), field("buttonId", .identifier), field("ctaText"), pageUrl],
            inSegmentSource: false
        ),
        Kind(name: "checklist completed", title: "Checklist Completed", fields: checklist + [pageUrl], inSegmentSource: true),
        Kind(name: "checklist item trigger", title: "Checklist Item Trigger", fields: checklist + guide + [pageUrl], inSegmentSource: true),
        Kind(
            name: "checklist item url click",
            title: "Checklist Item Url Click",
            fields: checklist + [field("checklistItemUrl"), pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center guide trigger",
            title: "Resource Center Guide Trigger",
            fields: resourceCenter + guide + [pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center survey trigger",
            title: "Resource Center Survey Trigger",
            fields: resourceCenter + survey + [pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center checklist guide trigger",
            title: "Resource Center Checklist Guide Trigger",
            fields: resourceCenter + checklist + guide + [pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center checklist item url click",
            title: "Resource Center Checklist Item Url Click",
            fields: resourceCenter + checklist + [field("checklistItemUrl"), pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center external url click",
            title: "Resource Center External URL Click",
            fields: resourceCenter + [field("externalUrl"), pageUrl],
            inSegmentSource: true
        ),
        Kind(
            name: "resource center article link click",
            title: "Resource Center Article Link Click",
            fields: resourceCenter + [field("articleLink"), pageUrl],
            inSegmentSource: true
        ),
        Kind(name: "survey shown", title: "Survey Shown", fields: survey + [pageUrl], inSegmentSource: true),
        Kind(
            name: "survey question answer",
            title: "Survey Question Answer",
            fields: survey + [
                field("questionId", .identifier), field("questionType", .oneOf(questionTypes)), field("surveyQuestion"),
                field("score", .integer, required: false), field("emojiScore", .oneOf(surveyEmojiScores), required: false),
                field("choices", required: false), field("feedback", required: false), pageUrl,
            ],
            inSegmentSource: true
        ),
        Kind(
            name: "product updates feedback",
            title: "Product Updates Feedback",
            fields: [
                field("postId", .identifier), field("postName"), field("emojiScore", .oneOf(feedbackEmojiScores), required: false),
                field("feedback", required: false), pageUrl,
            ],
            inSegmentSource: false
        ),
        Kind(
            name: "knowledge base feedback",
            title: "Knowledge Base Feedback",
            fields: [field("articleId", .identifier), field("articleName"), field("emojiScore", .oneOf(feedbackEmojiScores)), pageUrl],
            inSegmentSource: false
        ),
        Kind(name: "ai assistant conversation start", title: "AI Assistant Conversation Start", fields: thread + [pageUrl], inSegmentSource: false),
        Kind(name: "ai assistant message receive", title: "AI Assistant Message Receive", fields: assistantMessage, inSegmentSource: false),
        Kind(
            name: "ai assistant fallback message receive",
            title: "AI Assistant Fallback Message Receive",
            fields: assistantMessage,
            inSegmentSource: false
        ),
        Kind(
            name: "ai assistant fallback action click",
            title: "AI Assistant Fallback Action Click",
            fields: thread + [field("type", .oneOf(["javascript", "url"])), field("url", required: false), pageUrl],
            inSegmentSource: false
        ),
        Kind(
            name: "ai assistant article click",
            title: "AI Assistant Article Click",
            fields: thread + [field("articleId", .identifier), field("articleName"), field("articleLink"), pageUrl],
            inSegmentSource: false
        ),
        Kind(name: "ai assistant guide trigger", title: "AI Assistant Guide Trigger", fields: thread + guide + [pageUrl], inSegmentSource: false),
    ]

    /// The properties UserGuiding's Segment guide (Segment's UserGuiding source) types `int`; every other
    /// property there is `str`. Export gives these as JSON integers when the value is one.
    public static let segmentIntegerProperties: Set<String> = [
        "guide_id", "hotspot_group_id", "hotspot_id", "checklist_id", "resource_center_id", "survey_id", "score",
    ]

    public static let byName: [String: Kind] = Dictionary(uniqueKeysWithValues: kinds.map { ($0.name, $0) })
    public static let byTitle: [String: Kind] = Dictionary(uniqueKeysWithValues: kinds.map { ($0.title, $0) })
}
