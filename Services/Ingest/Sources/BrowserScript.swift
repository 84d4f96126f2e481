import CairnCore
import CairnGzip

/// `GET /cairn.js`: the script a page loads to send User.com's `userengage(...)` calls and
/// Userlike's `userlikeTrackingEvent` callbacks to this ingest (docs/browser.md).
///
/// It batches per route, sends with `fetch(keepalive)` as `text/plain` (no CORS preflight),
/// hands whatever is still queued to `navigator.sendBeacon` when the page is hidden or left,
/// retries what the server did not take (network errors, 429, 5xx) with backoff, and never
/// throws into the host page. Each event gets its time when the page calls, so a retry carries
/// the same record and the same event identity (a resend is a duplicate, dropped as such).
public enum BrowserScript {
    /// The script's bytes as served.
    public static let bytes: [UInt8] = Array(source.utf8)

    /// The same, gzipped once (the script is served to every page view).
    public static let gzipped: [UInt8] = (try? Gzip.compress(bytes, level: 9)) ?? bytes

    /// A strong validator: a cached copy is revalidated with `If-None-Match`.
    public static let etag: String = "\"" + String(XXHash64.hash(bytes), radix: 16) + "\""

    static let source = #"""
        /* Cairn browser script: userengage() (User.com) and userlikeTrackingEvent (Userlike), sent to Cairn's ingest. */
        (function (window, document) {
          "use strict";
          try {
            if (window.cairn && window.cairn.version) return;
            var warn = function (message) {
              try { if (window.console && console.warn) console.warn("cairn: " + message); } catch (ignored) {}
            };
            var script = document.currentScript;
            var settings = window.cairnSettings || {};
            var attribute = function (name) { return script ? script.getAttribute("data-" + name) : null; };
            var writeKey = settings.writeKey || attribute("write-key");
            var host = settings.host || attribute("host");
            if (!host && script && script.src) host = script.src.replace(/\/cairn\.js([?#].*)?$/, "");
            host = String(host || "").replace(/\/+$/, "");
            var userId = settings.userId || attribute("user-id") || null;
            var flushMs = Number(settings.flushInterval) > 0 ? Number(settings.flushInterval) : 1000;
            var batchSize = 20;
            var beaconBytes = 60000;
            var maximumAttempts = 10;
            var queues = { usercom: [], userlike: [] };
            var timer = null;
            var retryAt = 0;
            var attempts = 0;
            var sending = false;
            var warned = {};
            var warnOnce = function (key, message) { if (!warned[key]) { warned[key] = true; warn(message); } };
            var now = function () { return new Date().toISOString(); };
            var byteLength = function (text) {
              try { return new TextEncoder().encode(text).length; } catch (ignored) { return text.length * 3; }
            };
            var currentUser = function () {
              if (userId) return String(userId);
              var civchat = window.civchat;
              if (civchat && (civchat.user_id || civchat.userId)) return String(civchat.user_id || civchat.userId);
              return null;
            };

            /* Chunks of at most `limit` bytes and 2,500 records each, every record whole. */
            var chunks = function (records, limit) {
              var out = [], current = [], size = 2;
              for (var i = 0; i < records.length; i++) {
                var text = JSON.stringify(records[i]);
                var bytes = byteLength(text) + 1;
                if (current.length && (size + bytes > limit || current.length === 2500)) {
                  out.push(current);
                  current = [];
                  size = 2;
                }
                current.push(records[i]);
                size += bytes;
              }
              if (current.length) out.push(current);
              return out;
            };

            var schedule = function (delay) {
              if (timer) return;
              timer = setTimeout(function () { timer = null; flush(); }, Math.max(delay, retryAt - Date.now(), 0));
            };

            var enqueue = function (route, record) {
              if (!writeKey) { warnOnce("key", "no write key: set data-write-key on the script tag or window.cairnSettings.writeKey"); return; }
              var text;
              try { text = JSON.stringify(record); } catch (error) { warn("an event that cannot be sent as JSON was left out: " + error); return; }
              if (byteLength(text) > 32000) { warn("an event over 32 KB of JSON was left out (ingest refuses it): " + text.slice(0, 80)); return; }
              record.writeKey = writeKey;
              queues[route].push(record);
              if (queues[route].length >= batchSize && !sending && Date.now() >= retryAt) flush();
              else schedule(flushMs);
            };

            /* Sends everything queued, one route after the other; what is not taken goes back to the front. */
            var flush = function () {
              if (sending || !host) return;
              var route = queues.usercom.length ? "usercom" : queues.userlike.length ? "userlike" : null;
              if (!route) return;
              var batch = chunks(queues[route], beaconBytes)[0];
              queues[route] = queues[route].slice(batch.length);
              sending = true;
              var settle = function (retry, reason) {
                sending = false;
                if (retry) {
                  attempts += 1;
                  if (attempts >= maximumAttempts) {
                    warn(batch.length + " event(s) not sent after " + attempts + " attempts: " + reason);
                    attempts = 0;
                  } else {
                    queues[route] = batch.concat(queues[route]);
                    retryAt = Date.now() + Math.min(30000, 1000 * Math.pow(2, attempts - 1));
                  }
                } else {
                  attempts = 0;
                  retryAt = 0;
                }
                if (queues.usercom.length || queues.userlike.length) schedule(0);
              };
              try {
                window.fetch(host + "/" + route, {
                  method: "POST",
                  body: JSON.stringify(batch),
                  headers: { "Content-Type": "text/plain" },
                  credentials: "omit",
                  keepalive: true
                }).then(function (response) {
                  if (response.ok) return settle(false);
                  if (response.status === 429 || response.status >= 500) return settle(true, "HTTP " + response.status);
                  response.text().then(function (text) { warn("/" + route + " refused " + batch.length + " event(s): HTTP " + response.status + " " + text); });
                  settle(false);
                }, function (error) { settle(true, String(error)); });
              } catch (error) {
                settle(true, String(error));
              }
            };

            /* The page is going away: whatever is queued goes by beacon, which outlives the page. */
            var flushByBeacon = function () {
              if (!host) return;
              ["usercom", "userlike"].forEach(function (route) {
                if (!queues[route].length) return;
                var left = [];
                chunks(queues[route], beaconBytes).forEach(function (batch) {
                  var sent = false;
                  try {
                    sent = navigator.sendBeacon && navigator.sendBeacon(host + "/" + route, JSON.stringify(batch));
                  } catch (ignored) {}
                  if (!sent) left = left.concat(batch);
                });
                queues[route] = left;
              });
              if (queues.usercom.length || queues.userlike.length) flush();
            };

            var userengage = function (name, attributes) {
              try {
                if (typeof name !== "string" || !name) { warn("userengage needs an event name such as 'event.app_created'"); return; }
                var user = currentUser();
                if (!user) warnOnce("user", "no user id (data-user-id, cairnSettings.userId, civchat.user_id or cairn.identify): User.com events name their user, so ingest keeps these as dead letters");
                var record = { event: name, timestamp: now(), attributes: attributes && typeof attributes === "object" ? attributes : {} };
                if (user) record.user_id = user;
                enqueue("usercom", record);
              } catch (error) {
                warn("userengage failed: " + error);
              }
            };

            var previousUserlike = typeof window.userlikeTrackingEvent === "function" ? window.userlikeTrackingEvent : null;
            var userlikeTrackingEvent = function (eventName, globalContext, sessionContext) {
              try {
                enqueue("userlike", {
                  event_name: eventName,
                  global_ctx: globalContext || {},
                  session_ctx: sessionContext || {},
                  timestamp: now()
                });
              } catch (error) {
                warn("userlikeTrackingEvent failed: " + error);
              }
              if (previousUserlike) {
                try { previousUserlike.apply(this, arguments); } catch (error) { warn("the page's own userlikeTrackingEvent threw: " + error); }
              }
            };

            /* Calls made before this script loaded, through the documented stub. */
            var pending = window.userengage && window.userengage.q;
            var previousUserengage = typeof window.userengage === "function" && !pending ? window.userengage : null;
            window.userengage = function () {
              userengage.apply(null, arguments);
              if (previousUserengage) {
                try { previousUserengage.apply(this, arguments); } catch (error) { warn("the page's own userengage threw: " + error); }
              }
            };
            window.userlikeTrackingEvent = userlikeTrackingEvent;
            window.cairn = {
              version: 1,
              identify: function (id) { userId = id == null ? null : String(id); },
              userengage: userengage,
              userlikeTrackingEvent: userlikeTrackingEvent,
              flush: function () { try { flush(); } catch (error) { warn("flush failed: " + error); } }
            };
            if (pending && pending.length) {
              for (var i = 0; i < pending.length; i++) userengage.apply(null, pending[i]);
            }
            window.addEventListener("pagehide", function () { try { flushByBeacon(); } catch (ignored) {} });
            document.addEventListener("visibilitychange", function () {
              try { if (document.visibilityState === "hidden") flushByBeacon(); } catch (ignored) {}
            });
            if (!host) warn("no ingest address: load cairn.js from the ingest or set data-host");
          } catch (error) {
            try { if (window.console && console.warn) console.warn("cairn: the script could not start: " + error); } catch (ignored) {}
          }
        })(window, document);

        """#
}
