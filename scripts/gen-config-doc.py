#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Keeps the settings table of docs/configuration.md equal to `rankcast --help`.

    scripts/gen-config-doc.py [BIN]           rewrite the table between the markers
    scripts/gen-config-doc.py --check [BIN]   exit 1 if it differs (run by scripts/test)
"""
import re
import subprocess
import sys

DOC = "docs/configuration.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def table(binary):
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    lines = text.splitlines()
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for i, line in enumerate(lines[:-1]):
        m = re.match(r"\s+--(\S+)\s+(.*)", line)
        m2 = re.match(r"\s+env (\S+), default '(.*)'", lines[i + 1])
        if m and m2:
            default = re.sub(r".*/web-demo$", "<source>/web-demo", m2.group(2))
            default = re.sub(r".*/client-sdk/js$", "<source>/client-sdk/js", default)
            shown = f"`{default}`" if default else "(empty)"
            rows.append(f"| `--{m.group(1)}` | `{m2.group(1)}` | {shown} | "
                        f"{m.group(2).replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    binary = args[0] if args else "build/server/rankcast"
    doc = open(DOC).read()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    new = doc[:start] + "\n" + table(binary) + "\n" + doc[end:]
    if check:
        if new != doc:
            print(f"{DOC} is out of date: run scripts/gen-config-doc.py", file=sys.stderr)
            return 1
        return 0
    open(DOC, "w").write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
