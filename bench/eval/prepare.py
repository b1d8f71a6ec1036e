#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns the UCI Online Retail CSV into sessions for rankcast-eval (bench/eval/eval.c).

One invoice is one session. Cancellations (InvoiceNo starting with C) and non-product codes
(postage, fees, manual entries, gift vouchers: anything not starting with five digits) are
dropped; rows are ordered by InvoiceDate, then file order; consecutive repeats of an item are
merged (with --keep-repeats they are kept, for rankcast-eval --targets all: session-rec's
protocol merges nothing); sessions with fewer than two items are dropped. The last 10% of the calendar days with
any session are the test split, the rest is train. With --validation the test days are
dropped and the last 10% of the remaining days become the test split (for choosing settings
without looking at the test days).

Output, one line per session, ordered by time:  split<TAB>timestamp_ms<TAB>item item item...
Standard library only.
"""

import argparse
import csv
import datetime as dt
import gzip
import math
import os
import re
import sys

PRODUCT_CODE = re.compile(r"^[0-9]{5}")


def read_sessions(path):
    """Returns {invoice: [(ts_ms, row_no, item), ...]} for the kept rows."""
    sessions = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f)):
            inv = row["InvoiceNo"].strip()
            code = row["StockCode"].strip().upper()
            if not inv or inv.upper().startswith("C") or not PRODUCT_CODE.match(code):
                continue
            when = dt.datetime.strptime(row["InvoiceDate"].strip(), "%Y-%m-%d %H:%M:%S")
            ts_ms = int(when.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
            sessions.setdefault(inv, []).append((ts_ms, row_no, code))
    return sessions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="/work/shared/data/online-retail/online_retail.csv.gz")
    ap.add_argument("--test-days", type=float, default=0.10,
                    help="fraction of the last days used as test (default 0.10)")
    ap.add_argument("--validation", action="store_true",
                    help="drop the test days; split the train days the same way")
    ap.add_argument("--keep-repeats", action="store_true",
                    help="keep consecutive repeats of an item (rankcast-eval --targets all)")
    ap.add_argument("output", nargs="?", default="/tmp/rankcast-eval/sessions.tsv")
    args = ap.parse_args()

    out = []
    for rows in read_sessions(args.input).values():
        rows.sort()
        items = []
        for _, _, code in rows:
            if args.keep_repeats or not items or items[-1] != code:
                items.append(code)
        if len(items) >= 2:
            out.append((rows[0][0], items))
    out.sort(key=lambda s: s[0])

    def split_day(sessions):
        days = sorted({s[0] // 86400000 for s in sessions})
        n = max(1, math.ceil(len(days) * args.test_days))
        return days, n, days[-n]

    days, n_test_days, first_test_day = split_day(out)
    if args.validation:
        out = [s for s in out if s[0] // 86400000 < first_test_day]
        days, n_test_days, first_test_day = split_day(out)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    counts = {"train": 0, "test": 0}
    events = {"train": 0, "test": 0}
    with open(args.output, "w", encoding="utf-8") as f:
        for ts_ms, items in out:
            split = "test" if ts_ms // 86400000 >= first_test_day else "train"
            counts[split] += 1
            events[split] += len(items)
            f.write(f"{split}\t{ts_ms}\t{' '.join(items)}\n")
    first = dt.datetime.fromtimestamp(first_test_day * 86400, dt.timezone.utc).date()
    print(f"{args.output}: {len(days)} days, test from {first} ({n_test_days} days); "
          f"train {counts['train']} sessions / {events['train']} items, "
          f"test {counts['test']} sessions / {events['test']} items", file=sys.stderr)


if __name__ == "__main__":
    main()
