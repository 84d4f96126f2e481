import CairnCore
import CairnGzip

/// `GET /cairn.js`: the script a page loads to send User.com's `userengage(...)` calls and
/// Userlike's `userlikeTrackingEvent` callbacks to this ingest (docs/browser.md).
///
/// It serialises each call at once (later changes to the page's objects cannot alter or break
/// it), batches per route, sends with `fetch` as `text/plain` (no CORS preflight), retries what
/// the server did not take (network errors, 429 with `Retry-After`, 5xx) with backoff, halves a
/// batch ingest refused whole until the one record at fault stands alone, and never throws into
/// the host page. When the page is hidden or left, one `sendBeacon` takes what fits the
/// browser's 64 KiB and the rest waits in `localStorage` for the next page that loads the
/// script. Each call gets its own millisecond, kept by every resend, so a resend has the same
/// event identity and is dropped as a duplicate.
public enum BrowserScript {
    /// The script's bytes as served: ``source`` without its comment lines and indentation.
    public static let bytes: [UInt8] = Array(compacted(source).utf8)

    /// Drops whole-line comments and leading spaces; line breaks stay, so statements end where
    /// they did. The source holds no template literals or strings that span lines.
    static func compacted(_ text: String) -> String {
        var lines: [Substring] = []
        var inComment = false
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            if inComment {
                inComment = !trimmed.contains("*/")
                continue
            }
            if trimmed.hasPrefix("/*") {
                inComment = !trimmed.contains("*/")
                if lines.isEmpty { lines.append(trimmed) }  // the first line names the script
                continue
            }
            if !trimmed.isEmpty { lines.append(trimmed) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The same, gzipped once (the script is served to every page view).
    public static let gzipped: [UInt8] = (try? Gzip.compress(bytes, level: 9)) ?? bytes

    /// A strong validator: a cached copy is revalidated with `If-None-Match`.
    public static let etag: String = "\"" + String(XXHash64.hash(bytes), radix: 16) + "\""
    /// The gzipped bytes' own validator: two encodings are two representations.
    public static let gzippedETag: String = "\"" + String(XXHash64.hash(bytes), radix: 16) + "-gzip\""

    static let source = #"""
        /* Cairn browser script: userengage() (User.com) and userlikeTrackingEvent (Userlike), sent to Cairn's ingest. */
        (function (window, document) {
          "use strict";
          var describe = function (value) {
            try { return String(value); } catch (ignored) { return "(an error that cannot be shown)"; }
          };
          var warn = function (message) {
            try { if (window.console && console.warn) console.warn("cairn: " + message); } catch (ignored) {}
          };
          try {
            if (window.cairn && window.cairn.__cairn) { warn("cairn.js is already loaded on this page; this copy does nothing"); return; }
            var script = document.currentScript;
            var attribute = function (name) { try { return script ? script.getAttribute("data-" + name) : null; } catch (ignored) { return null; } };
            /* window.cairnSettings may be clobbered by markup (<a id=cairnSettings>): only plain strings and numbers count, and the tag's data- attributes win. */
            var given = window.cairnSettings;
            var settings = given && typeof given === "object" && !(window.Node && given instanceof window.Node) ? given : {};
            var setting = function (name, key) {
              var fromTag = attribute(name);
              if (fromTag) return fromTag;
              var value;
              try { value = settings[key]; } catch (ignored) { return null; }
              return typeof value === "string" || typeof value === "number" ? String(value) : null;
            };
            var writeKey = setting("write-key", "writeKey");
            var host = setting("host", "host");
            if (!host && script && script.src) host = script.src.replace(/\/cairn\.js([?#].*)?$/, "");
            host = String(host || "").replace(/\/+$/, "");
            var userId = setting("user-id", "userId");
            var flushMs = Number(setting("flush-interval", "flushInterval")) > 0 ? Number(setting("flush-interval", "flushInterval")) : 1000;
            var routes = ["usercom", "userlike"];
            var batchSize = 20;
            /* Keepalive requests and beacons share 64 KiB in flight: one beacon of at most this many bytes. */
            var beaconBytes = 60000;
            var recordBytes = 31000;
            var maximumDepth = 30;
            var maximumAttempts = 10;
            /* Each page keeps its own entry: a tab hidden or closed never overwrites another's. */
        var storagePrefix = "cairn:unsent:" + (writeKey || "") + ":";
        var storageKey = storagePrefix + Date.now().toString(36) + Math.random().toString(36).slice(2);
            var lanes = {};
            routes.forEach(function (route) {
              lanes[route] = { queue: [], inflight: null, attempts: 0, retryAt: 0, limit: Infinity };
            });
            var timer = null;
            var lastTime = 0;
            var warned = {};
            var warnOnce = function (key, message) { if (!warned[key]) { warned[key] = true; warn(message); } };
            /* Each call gets its own millisecond, so two identical calls stay two events; a resend keeps it. */
            var stamp = function (time) {
              var ms = Math.max(typeof time === "number" && isFinite(time) ? time : Date.now(), lastTime + 1);
              lastTime = ms;
              return new Date(ms).toISOString();
            };
            var byteLength = function (text) {
              try { return new TextEncoder().encode(text).length; } catch (ignored) { return text.length * 3; }
            };
            var depth = function (value, level) {
              if (level > maximumDepth || value === null || typeof value !== "object") return level;
              var deepest = level;
              for (var key in value) {
                if (Object.prototype.hasOwnProperty.call(value, key)) deepest = Math.max(deepest, depth(value[key], level + 1));
                if (deepest > maximumDepth) break;
              }
              return deepest;
            };
            var currentUser = function () {
              if (userId) return String(userId);
              var civchat = window.civchat;
              if (civchat && (typeof civchat.user_id === "string" || typeof civchat.user_id === "number")) return String(civchat.user_id);
              return null;
            };

            /* Serialised when called: what is sent is the event as it was then, and nothing the page does later can break a batch. */
            var enqueue = function (route, record, what) {
              if (!writeKey) { warnOnce("key", "no write key: set data-write-key on the script tag or window.cairnSettings.writeKey"); return; }
              record.writeKey = writeKey;
              var text;
              try { text = JSON.stringify(record); } catch (error) { warn(what + " left out: it cannot be sent as JSON (" + describe(error) + ")"); return; }
              if (/(^|[^\\])(\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}/.test(text)) { warn(what + " left out: it holds a lone UTF-16 surrogate, which is not text"); return; }
              /* Ingest writes a control character as \u00XX where JSON.stringify may write \n: counted as ingest counts it. */
              var bytes = byteLength(text) + 4 * (text.match(/\\[bfnrt]/g) || []).length;
              if (bytes > recordBytes) { warn(what + " left out: it is over 31 KB of JSON, and ingest refuses a record over 32 KB"); return; }
              if (depth(record, 1) > maximumDepth) { warn(what + " left out: it nests deeper than " + maximumDepth + " levels"); return; }
              lanes[route].queue.push({ text: text, bytes: bytes + 1 });
              if (lanes[route].queue.length >= batchSize) flush(); else schedule(flushMs);
            };

            var schedule = function (delay) {
              if (timer) return;
              var wait = delay;
              routes.forEach(function (route) { if (lanes[route].queue.length) wait = Math.max(wait, lanes[route].retryAt - Date.now()); });
              timer = setTimeout(function () { timer = null; flush(); }, Math.max(wait, 0));
            };

            /* The first records of `items` that fit `bytes` (and `count`), always at least one. */
            var take = function (items, bytes, count) {
              var size = 2, n = 0;
              while (n < items.length && n < count && n < 2500 && (n === 0 || size + items[n].bytes <= bytes)) { size += items[n].bytes; n += 1; }
              return items.slice(0, n);
            };
            var body = function (items) { return "[" + items.map(function (item) { return item.text; }).join(",") + "]"; };

            var send = function (route) {
              var lane = lanes[route];
              if (lane.inflight || !lane.queue.length || Date.now() < lane.retryAt) return;
              var batch = take(lane.queue, beaconBytes, Math.min(lane.limit, 375));
              lane.queue = lane.queue.slice(batch.length);
              lane.inflight = batch;
              var url = host + "/" + route;
              var settle = function (outcome, reason, retryAfter) {
                lane.inflight = null;
                if (outcome === "retry") {
                  lane.attempts += 1;
                  if (lane.attempts >= maximumAttempts) {
                    warn(batch.length + " event(s) not sent after " + lane.attempts + " attempts: " + reason);
                    lane.attempts = 0;
                    lane.retryAt = 0;
                  } else {
                    lane.queue = batch.concat(lane.queue);
                    lane.retryAt = Date.now() + (retryAfter > 0 ? Math.min(retryAfter * 1000, 300000) : Math.min(30000, 1000 * Math.pow(2, lane.attempts - 1)));
                  }
                } else if (outcome === "split") {
                  /* Ingest refused the request whole: halve it until the one record at fault stands alone. */
                  lane.queue = batch.concat(lane.queue);
                  lane.limit = Math.ceil(batch.length / 2);
                } else {
                  lane.attempts = 0;
                  lane.retryAt = 0;
                  lane.limit = Infinity;
                }
                if (lanes.usercom.queue.length || lanes.userlike.queue.length) schedule(0);
              };
              if (typeof window.fetch !== "function") {
                var queued = false;
                try { queued = navigator.sendBeacon && navigator.sendBeacon(url, body(batch)); } catch (ignored) {}
                return settle(queued ? "sent" : "retry", "neither fetch nor sendBeacon took the request");
              }
              try {
                window.fetch(url, { method: "POST", body: body(batch), headers: { "Content-Type": "text/plain" }, credentials: "omit" }).then(function (response) {
                  if (response.ok) {
                    response.json().then(function (answer) {
                      if (answer && answer.rejected) warn(route + ": ingest kept " + answer.rejected + " event(s) as dead letters: " + describe(JSON.stringify(answer.errors)).slice(0, 500));
                    }, function () {});
                    return settle("sent");
                  }
                  if (response.status === 429 || response.status >= 500) return settle("retry", "HTTP " + response.status, Number(response.headers.get("Retry-After")));
                  if (response.status === 400 && batch.length > 1) return settle("split");
                  response.text().then(function (text) {
                    warn("/" + route + " refused " + batch.length + " event(s): HTTP " + response.status + " " + text);
                  }, function () {});
                  settle("refused");
                }, function (error) { settle("retry", describe(error)); });
              } catch (error) {
                settle("retry", describe(error));
              }
            };

            var flush = function () {
              if (!host) return;
              routes.forEach(send);
            };

            /* The page is going away: one beacon (the browser delivers it after the page is gone) takes what
               fits; what is in flight or does not fit is kept in localStorage and sent by the next page of this
               site that loads the script. A record sent twice this way is the same record, stored once. */
            var leave = function () {
              if (!host) return;
              var left = {};
              var room = beaconBytes;
              routes.forEach(function (route) {
                var lane = lanes[route];
                var pending = lane.queue;
                left[route] = lane.inflight ? lane.inflight.slice() : [];
                if (pending.length && room > 1000) {
                  var batch = take(pending, room, 2500);
                  var sent = false;
                  try { sent = navigator.sendBeacon && navigator.sendBeacon(host + "/" + route, body(batch)); } catch (ignored) {}
                  if (sent) {
                    room -= byteLength(body(batch));
                    pending = pending.slice(batch.length);
                  }
                }
                left[route] = left[route].concat(pending);
                lane.queue = pending;
              });
              keep(left);
            };

            var keep = function (left) {
              try {
                var stored = { usercom: [], userlike: [] };
                var size = 0;
                routes.forEach(function (route) {
                  left[route].forEach(function (item) {
                    if (size + item.bytes > 1000000) return;
                    size += item.bytes;
                    stored[route].push(item.text);
                  });
                });
                if (size) window.localStorage.setItem(storageKey, JSON.stringify(stored)); else window.localStorage.removeItem(storageKey);
              } catch (ignored) {}
            };

            /* What earlier pages of this site left: taken (and removed) whole, page by page. */
            var restore = function () {
              try {
                var keys = [];
                for (var index = 0; index < window.localStorage.length; index++) {
                  var key = window.localStorage.key(index);
                  if (key && key.indexOf(storagePrefix) === 0) keys.push(key);
                }
                keys.forEach(function (key) {
                  var text = window.localStorage.getItem(key);
                  window.localStorage.removeItem(key);
                  var stored = JSON.parse(text || "{}");
                  routes.forEach(function (route) {
                    (stored[route] || []).forEach(function (record) {
                      if (typeof record === "string") lanes[route].queue.push({ text: record, bytes: byteLength(record) + 1 });
                    });
                  });
                });
              } catch (ignored) {}
            };

            var userengage = function (name, attributes, time) {
              try {
                if (typeof name !== "string" || !name) { warn("userengage needs an event name such as 'event.app_created'"); return; }
                var user = currentUser();
                if (!user) warnOnce("user", "no user id (data-user-id, cairnSettings.userId, civchat.user_id or cairn.identify): User.com events name their user, so ingest keeps these as dead letters");
                var record = { event: name, timestamp: stamp(time), attributes: attributes && typeof attributes === "object" && !Array.isArray(attributes) ? attributes : {} };
                if (user) record.user_id = user;
                enqueue("usercom", record, "userengage('" + name.slice(0, 80) + "')");
              } catch (error) {
                warn("userengage failed: " + describe(error));
              }
            };

            var previousUserlike = typeof window.userlikeTrackingEvent === "function" ? window.userlikeTrackingEvent : null;
            var userlikeTrackingEvent = function (eventName, globalContext, sessionContext) {
              try {
                enqueue("userlike", {
                  event_name: eventName,
                  global_ctx: globalContext || {},
                  session_ctx: sessionContext || {},
                  timestamp: stamp()
                }, "userlikeTrackingEvent('" + describe(eventName).slice(0, 80) + "')");
              } catch (error) {
                warn("userlikeTrackingEvent failed: " + describe(error));
              }
              if (previousUserlike) {
                try { previousUserlike.apply(this, arguments); } catch (error) { warn("the page's own userlikeTrackingEvent threw: " + describe(error)); }
              }
            };

            /* Calls made before this script loaded, through the documented stub ([time, arguments] pairs, or bare arguments). */
            var existing = window.userengage;
            var isStub = typeof existing === "function" && (existing.q || /\.q\b/.test(describe(Function.prototype.toString.call(existing))));
            var pending = isStub && existing.q ? existing.q : [];
            var previousUserengage = typeof existing === "function" && !isStub ? existing : null;
            window.userengage = function () {
              userengage(arguments[0], arguments[1]);
              if (previousUserengage) {
                try { previousUserengage.apply(this, arguments); } catch (error) { warn("the page's own userengage threw: " + describe(error)); }
              }
            };
            window.userlikeTrackingEvent = userlikeTrackingEvent;
            window.cairn = {
              __cairn: true,
              version: 2,
              identify: function (id) {
                try { userId = id == null ? null : String(id); } catch (error) { warn("identify needs a string: " + describe(error)); }
              },
              userengage: function (name, attributes) { userengage(name, attributes); },
              userlikeTrackingEvent: userlikeTrackingEvent,
              flush: function () { try { flush(); } catch (error) { warn("flush failed: " + describe(error)); } }
            };
            restore();
            for (var i = 0; i < pending.length; i++) {
              var call = pending[i];
              if (call && typeof call[0] === "number" && call[1] && typeof call[1].length === "number") userengage(call[1][0], call[1][1], call[0]);
              else if (call) userengage(call[0], call[1]);
            }
            if (lanes.usercom.queue.length || lanes.userlike.queue.length) schedule(0);
            window.addEventListener("pagehide", function () { try { leave(); } catch (ignored) {} });
            document.addEventListener("visibilitychange", function () {
              try { if (document.visibilityState === "hidden") leave(); } catch (ignored) {}
            });
            if (!host) warn("no ingest address: load cairn.js from the ingest or set data-host");
          } catch (error) {
            warn("the script could not start: " + describe(error));
          }
        })(window, document);

        """#
}
