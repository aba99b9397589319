"""Source of the ticket-classification data (examples/classify_tickets.ft): support tickets in five classes.

Tickets are composed from per-class openings, problems and closings (written by hand), with a fixed seed,
so each row reads differently. Validation tickets describe problems that no training ticket mentions.

    python examples/data/tickets_make.py    # rewrites tickets_train.jsonl and tickets_val.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS = ["billing", "technical", "shipping", "account", "feature_request"]

PROBLEMS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my order", "my card was billed 249 euros instead of 189",
        "I need a refund for the subscription I cancelled", "the invoice shows the wrong VAT number",
        "my Pulse Plus renewal charged me after I cancelled", "there is an unknown charge on my statement",
        "the student discount was not applied at checkout", "I want a copy of my invoice for March",
        "the trade-in credit of 30 euros never showed up", "my payment failed but the money left my account",
        "I was billed for a month I did not use", "can you change my plan from monthly to yearly billing",
        "the promo code did not reduce the price", "my refund has not arrived after two weeks",
        "why is my bill higher than last month",
    ],
    "technical": [
        "the hub shows error E-417 and will not join Wi-Fi", "the ring keeps pulsing red even with internet",
        "my Zigbee sensors disconnect every night", "the firmware update is stuck at 60 percent",
        "the hub gets very hot and shows E-901", "Aurora does not respond to the wake word",
        "automations stopped running after the update", "the app says the hub is offline but it is on",
        "pairing a Thread light fails every time", "the device reboots on its own every few hours",
        "motion sensor events arrive ten minutes late", "the hub will not power on with my USB-C cable",
        "Matter devices show as unavailable", "the factory reset does not finish",
        "error E-212 appears after installing firmware",
    ],
    "shipping": [
        "my package has not arrived after ten days", "the tracking number does not work",
        "the box arrived damaged", "I received the wrong colour, Slate Grey instead of Birch White",
        "can I change the delivery address of my order", "the courier left my parcel at the wrong house",
        "my order is stuck in customs", "when will my Pulse Sense pack ship",
        "only one of my two items was delivered", "can I pick up the order instead of delivery",
        "the delivery was marked as delivered but nothing came", "do you ship to Iceland",
        "I need the parcel before Friday, can you expedite it", "the package was returned to sender",
        "the shipping fee was charged although my order was over 50 euros",
    ],
    "account": [
        "I cannot log in to the Kestrel Home app", "I forgot my password and the reset email never comes",
        "please delete my account and my data", "I want to change the email on my account",
        "my account was locked after too many attempts", "how do I add my partner as a second user",
        "two-factor codes are not arriving by SMS", "someone else logged into my account",
        "I need to transfer the hub to a new owner", "my username shows the wrong name",
        "I cannot remove an old member from my household", "the verification link has expired",
        "please merge my two accounts", "I want to download all the data you store about me",
        "the app logs me out every day",
    ],
    "feature_request": [
        "please add a dark mode to the app", "it would be great to support Spanish for Aurora",
        "could you add an energy usage dashboard", "I would love widgets for the home screen",
        "please let guest mode last longer than 24 hours", "add support for more than 8 users per household",
        "it would help to export event history as CSV", "please add scheduling by sunrise and sunset",
        "could the hub support Bluetooth speakers", "I wish I could rename rooms in bulk",
        "please add an API for developers", "it would be nice to have a vacation mode",
        "could you add geofencing to automations", "please offer a black colour option",
        "add a way to share automations with friends",
    ],
}

OPENINGS = ["Hi,", "Hello support,", "Hey team,", "Good morning,", "Dear Kestrel Dynamics,", "Hi there,", ""]
CLOSINGS = {
    "billing": ["Please fix the charge.", "I expect my money back.", "Thanks for checking the payment.", ""],
    "technical": ["I already restarted it twice.", "Any troubleshooting tips?", "It worked fine last week.", ""],
    "shipping": ["Where is my parcel?", "Order number is KD-48213.", "Please tell me when it will arrive.", ""],
    "account": ["I need access urgently.", "My login email is on file.", "Please help me sort out my profile.", ""],
    "feature_request": ["That would make the product much better.", "Just a suggestion!",
                        "Many users would like this.", ""],
}


#: the last problems of each class appear only in validation: the metric measures generalization
HELD_OUT = 3


def ticket(rng: random.Random, label: str, held_out: bool) -> str:
    problems = PROBLEMS[label][-HELD_OUT:] if held_out else PROBLEMS[label][:-HELD_OUT]
    problem = rng.choice(problems)
    parts = [rng.choice(OPENINGS), problem[0].upper() + problem[1:] + ".", rng.choice(CLOSINGS[label])]
    return " ".join(p for p in parts if p)


def rows(rng: random.Random, per_label: int, seen: set[str], held_out: bool) -> list[dict]:
    out: list[dict] = []
    for label in LABELS:
        n = 0
        while n < per_label:
            text = ticket(rng, label, held_out)
            if text in seen:
                continue
            seen.add(text)
            out.append({"text": text, "label": label})
            n += 1
    rng.shuffle(out)
    return out


def write(out_dir: Path) -> None:
    rng = random.Random(7)
    seen: set[str] = set()
    train = rows(rng, 64, seen, held_out=False)
    val = rows(rng, 16, seen, held_out=True)
    for name, data in (("tickets_train.jsonl", train), ("tickets_val.jsonl", val)):
        tmp = out_dir / (name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
        tmp.replace(out_dir / name)
    print(f"{len(train)} training tickets, {len(val)} validation tickets, {len(LABELS)} labels")


if __name__ == "__main__":
    write(Path(__file__).resolve().parent)
