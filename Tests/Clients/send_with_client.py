#!/usr/bin/env python3
"""Sends page, identify, track, group and alias calls to Cairn through a real client library,
as an app's backend would: `send_with_client.py segment|rudder HOST WRITE_KEY gzip|plain TAG`.

Every id and value carries TAG, so the test can find exactly these events in PostgreSQL.
Prints a JSON summary; exits 1 when the client reported an error (a non-200 answer)."""
import json
import sys

library, host, write_key, compression, tag = sys.argv[1:6]
if library == "segment":
    from segment.analytics.client import Client
elif library == "rudder":
    from rudderstack.analytics.client import Client
else:
    sys.exit(f"unknown client library {library!r}")

errors = []
client = Client(write_key, host=host, gzip=(compression == "gzip"), max_retries=0,
                on_error=lambda error, batch: errors.append(f"{type(error).__name__}: {error}"))
user, anonymous, company = f"{tag}-user", f"{tag}-anon", f"{tag}-co"
client.page(anonymous_id=anonymous, category="Docs", name="Pricing",
            properties={"path": "/pricing", "url": "https://example.com/pricing", "title": "Pricing"})
client.identify(user_id=user, anonymous_id=anonymous, traits={"plan": "pro", "seats": 5})
client.track(user_id=user, event="Order Completed", properties={"revenue": 19.99, "order_id": tag, "items": 3})
client.group(user_id=user, group_id=company, traits={"name": f"{tag} Inc", "plan": "enterprise"})
client.alias(previous_id=f"{tag}-device", user_id=user)
client.flush()
client.join()
print(json.dumps({"library": library, "gzip": compression == "gzip", "sent": 5, "errors": errors}))
sys.exit(1 if errors else 0)
