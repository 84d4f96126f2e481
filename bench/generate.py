#!/usr/bin/env python3
"""Writes a deterministic file of Userpilot-schema events for `make bench`.

usage: generate.py N OUT [--app APP] [--users U] [--companies C] [--days D]
"""
import argparse
import json
import random
from datetime import datetime, timedelta, timezone

parser = argparse.ArgumentParser()
parser.add_argument("count", type=int)
parser.add_argument("out")
parser.add_argument("--app", default="bench")
parser.add_argument("--users", type=int, default=100_000)
parser.add_argument("--companies", type=int, default=2_000)
parser.add_argument("--days", type=int, default=30)
args = parser.parse_args()

rng = random.Random(42)
start = datetime(2024, 5, 1, tzinfo=timezone.utc)
span = args.days * 86_400 * 1_000_000
paths = ["/", "/dashboard", "/settings", "/pricing", "/reports", "/billing"]
tracks = ["Added to cart", "Purchased", "Report Exported", "Invite Sent", "Project Created"]
statuses = ["SEEN", "COMPLETED", "DISMISSED", "ENGAGED"]
entities = ["experience", "checklist", "resource_center", "survey_module", "nps", "experiment"]
# Proportions: page views dominate, then tracks, interactions, sessions, identifies.
kinds = ["page_view"] * 40 + ["track"] * 25 + ["interaction"] * 20 + ["session_start"] * 8 + \
        ["identify_user"] * 4 + ["identify_company"] * 1 + ["track_feature"] * 2

with open(args.out, "w") as out:
    for i in range(args.count):
        user = rng.randrange(args.users)
        company = user % args.companies
        kind = rng.choice(kinds)
        micros = rng.randrange(span)
        at = start + timedelta(microseconds=micros)
        event = {
            "app_token": args.app, "event_type": kind, "event_name": "",
            "user_id": f"user-{user}", "company_id": f"company-{company}",
            "source": "web-client",
            "inserted_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "hostname": "app.example.com", "pathname": rng.choice(paths),
            "screen_width": 1440, "screen_height": 900, "device_type": "desktop",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
            "operating_system": "macOS", "browser": "Chrome", "browser_language": "en-US",
            "session": str(1 + i % 50), "country_code": "DE", "metadata": {},
        }
        if kind == "track":
            event["event_name"] = rng.choice(tracks)
            event["metadata"] = {"price": rng.randrange(1, 500), "sku": str(rng.randrange(1000)), "color": rng.choice(["teal", "red", "blue"])}
        elif kind == "interaction":
            entity = rng.choice(entities)
            status = rng.choice(statuses)
            number = rng.randrange(1, 60)
            event["event_name"] = f"{entity}:{number}:{status}"
            # Each entity type carries its own attribute set (seed 003).
            attributes = {"interaction_id": f"{entity}_{number}", "status": status}
            if entity == "nps":
                attributes.update({"score": str(rng.randrange(11)), "survey_question": "How likely is it that you would recommend us?"})
            else:
                attributes["is_dismissed"] = "1" if status == "DISMISSED" else "0"
            if entity == "experiment":
                attributes.update({"variant": rng.choice(["A", "B", "C"]), "never_show_again": "0", "total_dismissed": "0"})
            if entity == "survey_module":
                attributes["variant"] = "multiple_choice"
            event["metadata"] = attributes
        elif kind == "track_feature":
            event["event_name"] = f"feature-{rng.randrange(40)}"
        elif kind == "identify_user":
            event["metadata"] = {"email": f"user{user}@example.com", "plan_type": rng.choice(["free", "pro", "enterprise"])}
        elif kind == "identify_company":
            event["metadata"] = {"company_name": f"Company {company}", "industry": rng.choice(["SaaS", "Retail", "Finance"])}
        out.write(json.dumps(event, separators=(",", ":")))
        out.write("\n")
