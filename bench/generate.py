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
parser.add_argument("--formats", choices=["userpilot", "all"], default="userpilot",
                    help="all: every input format in realistic proportions")
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

def other_format(i, user, at, rng):
    """One record in a format other than Userpilot, or None to write a Userpilot one."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    roll = i % 10
    if roll < 3:  # Segment: tracks, identifies with anonymous ids, pages
        kind = rng.random()
        if kind < 0.6:
            return {"type": "track", "event": rng.choice(["Purchased", "Report Exported", "Invite Sent"]), "userId": f"user-{user}",
                    "properties": {"price": rng.randrange(1, 500), "items": rng.randrange(1, 9)}, "timestamp": stamp, "messageId": f"m-{i}"}
        if kind < 0.8:
            return {"type": "identify", "userId": f"user-{user}", "anonymousId": f"anon-{user}",
                    "traits": {"plan": rng.choice(["free", "pro", "enterprise"])}, "timestamp": stamp, "messageId": f"m-{i}"}
        return {"type": "page", "anonymousId": f"anon-{user}", "properties": {"url": "https://app.example.com/pricing"},
                "timestamp": stamp, "messageId": f"m-{i}"}
    if roll == 3:  # UserGuiding
        guide = str(rng.randrange(1, 30))
        event = rng.choice(["guide started", "guide completed", "survey question answer"])
        if event == "survey question answer":
            payload = {"surveyId": "1", "surveyName": "NPS", "questionId": "q1", "questionType": "NPS Rating",
                       "surveyQuestion": "How likely?", "score": rng.randrange(11), "pageUrl": "https://app.example.com/"}
        else:
            payload = {"guideId": guide, "guideName": f"Guide {guide}", "pageUrl": "https://app.example.com/"}
        return {"event": event, "payload": payload, "user_id": f"user-{user}", "timestamp": stamp}
    if roll == 4:  # Userlike
        return {"event_name": rng.choice(["button_displayed", "chat_requested", "chat_started"]),
                "global_ctx": {"client_uuid": f"client-{user}", "widget_id": 1}, "timestamp": stamp}
    if roll == 5:  # User.com
        return {"event": "event.purchase", "user_id": f"user-{user}", "timestamp": stamp,
                "attributes": {"price": str(rng.randrange(1, 500)), "color": rng.choice(["teal", "red"])}}
    return None


with open(args.out, "w") as out:
    for i in range(args.count):
        user = rng.randrange(args.users)
        company = user % args.companies
        kind = rng.choice(kinds)
        micros = rng.randrange(span)
        at = start + timedelta(microseconds=micros)
        if args.formats == "all":
            record = other_format(i, user, at, rng)
            if record is not None:
                out.write(json.dumps(record, separators=(",", ":")))
                out.write("\n")
                continue
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
