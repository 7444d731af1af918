#!/usr/bin/env python3
"""Writes a CSV of consent records as a housing system exports them, for benches/import.sh:
ROWS rows, three purposes per tenant (newsletter, events, surveys), an email for every tenant
and a UK mobile in national form for every other one, UK dates, Y/N answers."""
import random
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout
random.seed(7)
purposes = ["Newsletter", "events", "surveys"]
out.write("row_id,Tenant ref,Email,Mobile,Purpose,Consent,Channel,Date\r\n")
for i in range(rows):
    t = i // 3
    purpose = purposes[i % 3]
    mobile = f"07700 9{t % 100000:05d}" if t % 2 == 0 else ""
    answer = "Y" if random.random() < 0.7 else "N"
    channel = "sms" if purpose == "events" and mobile else "email"
    date = f"{1 + t % 28:02d}/{1 + t % 12:02d}/{2010 + t % 14}"
    out.write(f"{i + 1},T-{t:07d},tenant{t}@example.org,{mobile},{purpose},{answer},{channel},{date}\r\n")
