import Testing

@testable import CairnExport

/// The follower's and the trigger's states, one transition at a time.
@Suite struct ExportStateTests {
    @Test func aFollowerWaitsForItsAppThenFollowsAndRetries() {
        let waiting = FollowerPhase.starting.after(.waitingForApp, lastFailure: nil)
        #expect(waiting == .starting)
        let noApp = FollowerPhase.waitingForApp("acme")
        #expect(noApp.name == "waiting for app" && noApp.detail == "no app is named 'acme' yet")
        #expect(noApp.appFound() == .following(lastFailure: nil))
        #expect(FollowerPhase.starting.appFound() == .following(lastFailure: nil))
        // Finding the app again does not hide a retry in progress.
        #expect(FollowerPhase.retrying("503").appFound() == .retrying("503"))

        let following = FollowerPhase.following(lastFailure: nil)
        #expect(following.after(.more, lastFailure: nil) == .catchingUp(lastFailure: nil))
        #expect(following.after(.unavailable, lastFailure: "HTTP 503") == .retrying("HTTP 503"))
        #expect(FollowerPhase.retrying("HTTP 503").after(.caughtUp, lastFailure: "HTTP 503 once") == .following(lastFailure: "HTTP 503 once"))
        #expect(FollowerPhase.catchingUp(lastFailure: nil).name == "catching up")
        #expect(FollowerPhase.retrying("HTTP 503").detail == "HTTP 503")
    }

    @Test func aTriggerIsActiveUnlessStoredAsDisabled() {
        #expect(TriggerState(stored: "active", reason: nil) == .active)
        #expect(TriggerState(stored: nil, reason: "ignored") == .active)
        let disabled = TriggerState(stored: "disabled", reason: "410 Gone at 2026-01-01")
        #expect(disabled == .disabled(reason: "410 Gone at 2026-01-01"))
        #expect(disabled.name == "disabled" && disabled.reason == "410 Gone at 2026-01-01")
        #expect(TriggerState.active.name == "active" && TriggerState.active.reason == nil)
    }
}
