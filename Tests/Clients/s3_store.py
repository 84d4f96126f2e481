"""A local S3 store for the object-store destination's tests: moto's server, driven with boto3.

  s3_store.py serve PORT           runs moto_server on 127.0.0.1:PORT (until killed)
  s3_store.py create PORT BUCKET   creates the bucket
  s3_store.py read PORT BUCKET     prints {"key", "lines": [...], "parts"} per object, as JSON lines;
                                   every object's body is gunzipped (several gzip members read as one)
  s3_store.py uploads PORT BUCKET  prints the number of incomplete multipart uploads
"""
import gzip
import json
import sys

import boto3


def client(port):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="cairn-test", aws_secret_access_key="cairn-test-secret")


def main():
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "serve":
        import signal
        import time
        from moto.server import ThreadedMotoServer
        # Started from a test process that blocks signals: unblock them, or SIGTERM never lands.
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        print("ready", flush=True)
        while True:
            time.sleep(3600)
    s3 = client(port)
    bucket = sys.argv[3]
    if command == "create":
        s3.create_bucket(Bucket=bucket)
    elif command == "read":
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                head = s3.head_object(Bucket=bucket, Key=item["Key"], PartNumber=1)
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                # "\n" only: a JSON string may hold U+2028, which splitlines() would split at.
                lines = [line for line in gzip.decompress(body).decode("utf-8").split("\n") if line]
                print(json.dumps({"key": item["Key"], "lines": lines, "parts": head.get("PartsCount", 1)}))
    elif command == "uploads":
        print(len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])))


if __name__ == "__main__":
    main()
