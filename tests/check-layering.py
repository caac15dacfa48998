#!/usr/bin/env python3
"""The include graph is one-way (DESIGN.md §6, STYLE.md "Our shape"):

    config/  <-  netlink/ (config's value types only)  <-  daemon/

Fails, naming file and line, when
- a file of netlink/ includes a header of daemon/, or of config/ other than the
  value types (prefix.h, util.h);
- a file of config/ includes a header of daemon/ or netlink/;
- netlink/meson.build or config/meson.build puts a folder of a higher layer on
  its include path.

Usage: check-layering.py [SOURCE_ROOT]   (default: this file's repository)
"""
import os
import re
import sys

CONFIG_VALUE_TYPES = {"prefix.h", "util.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def headers(root, folder):
    d = os.path.join(root, folder)
    return {f for f in os.listdir(d) if f.endswith(".h")}


def sources(root, folder):
    d = os.path.join(root, folder)
    return sorted(f for f in os.listdir(d) if f.endswith((".c", ".h")))


def check_folder(root, folder, forbidden, problems):
    """forbidden: header name -> why it may not be included from folder."""
    own = headers(root, folder)
    for name in sources(root, folder):
        path = os.path.join(root, folder, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                base = os.path.basename(inc)
                if "/" in inc and not inc.startswith("./"):
                    top = os.path.normpath(os.path.join(folder, os.path.dirname(inc))).split(os.sep)[0]
                    if top != folder and top in ("daemon", "netlink", "config"):
                        why = forbidden.get(base) or f"a header of {top}/"
                        if not (top == "config" and base in CONFIG_VALUE_TYPES and folder == "netlink"):
                            problems.append(f"{folder}/{name}:{lineno}: includes \"{inc}\": {why}")
                    continue
                if base in own:
                    continue
                if base in forbidden:
                    problems.append(f"{folder}/{name}:{lineno}: includes \"{inc}\": {forbidden[base]}")


def check_meson(root, folder, higher, problems):
    path = os.path.join(root, folder, "meson.build")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            code = line.split("#", 1)[0]
            for h in higher:
                if re.search(r"['\"]\.\./%s['\"/]" % h, code):
                    problems.append(f"{folder}/meson.build:{lineno}: puts ../{h} on the include path")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    daemon, netlink, config = (headers(root, f) for f in ("daemon", "netlink", "config"))
    problems = []

    forbid = {h: "netlink/ includes nothing from daemon/" for h in daemon - netlink}
    forbid.update({h: "netlink/ includes only config's value types (prefix.h, util.h)"
                   for h in config - CONFIG_VALUE_TYPES - netlink})
    check_folder(root, "netlink", forbid, problems)

    forbid = {h: "config/ includes nothing from daemon/" for h in daemon - config}
    forbid.update({h: "config/ includes nothing from netlink/" for h in netlink - config})
    check_folder(root, "config", forbid, problems)

    check_meson(root, "netlink", ["daemon"], problems)
    check_meson(root, "config", ["daemon", "netlink"], problems)

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-layering: {len(problems)} include(s) against the layering", file=sys.stderr)
        return 1
    print(f"check-layering: config/ <- netlink/ <- daemon/ holds "
          f"({len(sources(root, 'netlink'))} files of netlink/, {len(sources(root, 'config'))} of config/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
