import CairnCore
import Foundation
import Testing

@testable import CairnExport

@Suite struct ObjectStoreUnitTests {
    /// AWS's own example (S3 API reference, "Signature Calculations for the Authorization
    /// Header": GET Object with a Range header).
    @Test func signsAWSsDocumentedExample() {
        let signer = SignatureV4(
            accessKeyId: "AKIAIOSFODNN7EXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1"
        )
        let headers = signer.sign(
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: [],
            headers: ["range": "bytes=0-9"],
            payloadHash: SignatureV4.payloadHash([]),
            at: Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
        )
        #expect(
            headers["authorization"]
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        #expect(SignatureV4.encode("a b/ü~", keepingSlashes: true) == "a%20b/%C3%BC~")
        #expect(SignatureV4.encode("a/b") == "a%2Fb")
    }

    /// An object's name comes from the checkpoint it starts after: the same after a restart,
    /// another for any other start.
    @Test func objectNamesFollowTheCheckpoint() throws {
        let bucket = try S3Bucket(
            endpoint: "http://127.0.0.1:9000",
            bucket: "events",
            signer: SignatureV4(accessKeyId: "k", secretAccessKey: "s", region: "us-east-1"),
            retry: RetryPolicy()
        )
        let store = ObjectStoreDestination(bucket: bucket, prefix: "lake/", format: .canonical)
        let start = StreamPosition.event(xid: 812, at: "2026-12-03 14:05:00+00", id: 42)
        let key = store.key(destination: "lake", app: "acme", hour: "2026-12-03/14", after: start)
        #expect(key.hasPrefix("lake/app=acme/date=2026-12-03/hour=14/lake-812-") && key.hasSuffix(".jsonl.gz"))
        #expect(store.key(destination: "lake", app: "acme", hour: "2026-12-03/14", after: start) == key)
        // The same instant written in another session time zone, or with its fraction spelt out: the same name.
        for same in ["2026-12-03 09:05:00-05", "2026-12-03 14:05:00.000000+00", "2026-12-03T14:05:00Z"] {
            #expect(store.key(destination: "lake", app: "acme", hour: "2026-12-03/14", after: .event(xid: 812, at: same, id: 42)) == key)
        }
        #expect(
            store.key(destination: "lake", app: "acme", hour: "2026-12-03/14", after: .event(xid: 812, at: "2026-12-03 14:05:00+00", id: 43)) != key
        )
        // Another destination writing to the same place never takes this one's names.
        #expect(store.key(destination: "lake-2", app: "acme", hour: "2026-12-03/14", after: start) != key)
        #expect(ObjectStoreDestination.hour(of: Timestamp(parsing: "2026-12-03T14:59:59.999Z")!) == "2026-12-03/14")
        #expect(S3Bucket.element("UploadId", in: "<a><UploadId>x&amp;y</UploadId><UploadId>z</UploadId></a>") == ["x&y", "z"])
    }

    @Test func refusesBrokenObjectStores() {
        func parse(
            _ changes: JSONObject,
            environment: [String: String] = ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"]
        ) throws
            -> ContinuousDestination?
        {
            var entry: JSONObject = ["name": "lake", "app": "acme", "type": "s3", "bucket": "events"]
            for (key, value) in changes { entry[key] = value }
            return try ContinuousDestination.parse(settings: ["destinations": [.object(entry)]], environment: environment).first
        }
        #expect(throws: Never.self) { try parse([:]) }
        #expect((try? parse(["prefix": "cairn"]))?.url == "s3://events/cairn/")
        #expect(throws: ExportError.self) { try parse([:], environment: [:]) }  // no credentials
        #expect(throws: ExportError.self) { try parse(["bucket": "Not_A_Bucket"]) }
        #expect(throws: ExportError.self) { try parse(["format": "parquet"]) }
        #expect(throws: ExportError.self) { try parse(["endpoint": "http://s3.local/path"]) }
        #expect(throws: ExportError.self) { try parse(["part_bytes": 1024]) }
        #expect(throws: ExportError.self) { try parse(["prefix": "/abs"]) }
        #expect(throws: ExportError.self) { try parse(["type": "gcs"]) }
        // Names that a path-normalising proxy, or the store, would read otherwise.
        for bucket in ["..", ".", "a", "évents", "-events", "ev..ents"] {
            #expect(throws: ExportError.self, "\(bucket)") { try parse(["bucket": .string(bucket)]) }
        }
        for prefix in ["../other/", "a/../../x/", "a?b", "a#c", "a%d", "./x"] {
            #expect(throws: ExportError.self, "\(prefix)") { try parse(["prefix": .string(prefix)]) }
        }
        #expect(throws: ExportError.self) { try parse(["region": "../x"]) }
        #expect(throws: ExportError.self) { try parse(["region": ""]) }
        #expect(throws: ExportError.self) { try parse(["endpoint": "http://user:pw@127.0.0.1:9000"]) }
        #expect(throws: ExportError.self) { try parse(["app": "ac/me"]) }
        #expect(throws: Never.self) { try parse(["prefix": "lake/cairn-events=1/", "region": "eu-west-1"]) }
    }
}
