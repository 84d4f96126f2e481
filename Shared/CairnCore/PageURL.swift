/// Splits a page URL into the canonical `hostname` and `pathname`.
public enum PageURL {
    /// `https://app.acme.io/dashboard?x=1#top` → (`app.acme.io`, `/dashboard`); nil when it is not an absolute http(s) URL.
    ///
    /// Works on the UTF-8 bytes: every delimiter is ASCII, and it runs once per page event.
    public static func split(_ url: String) -> (hostname: String, pathname: String)? {
        var url = url
        return url.withUTF8 { bytes -> (hostname: String, pathname: String)? in
            let colon = UInt8(ascii: ":")
            let slash = UInt8(ascii: "/")
            let question = UInt8(ascii: "?")
            let hash = UInt8(ascii: "#")
            var schemeEnd = -1
            var index = 0
            while index + 2 < bytes.count {
                if bytes[index] == colon && bytes[index + 1] == slash && bytes[index + 2] == slash {
                    schemeEnd = index
                    break
                }
                index += 1
            }
            guard schemeEnd >= 0 else { return nil }
            let scheme = String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<schemeEnd]), as: UTF8.self).lowercased()
            guard scheme == "http" || scheme == "https" else { return nil }
            let restStart = schemeEnd + 3
            var authorityEnd = restStart
            while authorityEnd < bytes.count, bytes[authorityEnd] != slash, bytes[authorityEnd] != question, bytes[authorityEnd] != hash {
                authorityEnd += 1
            }
            var hostStart = restStart
            var hostEnd = authorityEnd
            if let at = (hostStart..<hostEnd).last(where: { bytes[$0] == UInt8(ascii: "@") }) { hostStart = at + 1 }
            if hostStart < hostEnd, bytes[hostStart] != UInt8(ascii: "["), let port = (hostStart..<hostEnd).last(where: { bytes[$0] == colon }) {
                hostEnd = port
            }
            guard hostStart < hostEnd else { return nil }
            var pathEnd = authorityEnd
            while pathEnd < bytes.count, bytes[pathEnd] != question, bytes[pathEnd] != hash { pathEnd += 1 }
            let host = String(decoding: UnsafeBufferPointer(rebasing: bytes[hostStart..<hostEnd]), as: UTF8.self).lowercased()
            let path = pathEnd == authorityEnd ? "/" : String(decoding: UnsafeBufferPointer(rebasing: bytes[authorityEnd..<pathEnd]), as: UTF8.self)
            return (host, path)
        }
    }
}
