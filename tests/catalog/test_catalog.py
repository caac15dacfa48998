#!/usr/bin/env python3
"""The journal message catalog (catalog/calico-underlay.catalog) against the code.

1. Every MESSAGE_ID the daemon can log (the LOG_ID_* definitions and any literal
   "MESSAGE_ID=<32 hex>" in config/, daemon/, netlink/) has exactly one entry, and the
   catalog has no entry for an id the code does not use.
2. Each entry has a Subject, Defined-By, Documentation, and a body that says what it
   means for traffic ("Traffic:") and what to do ("What to do:").
3. systemd's own parser agrees: `journalctl --root=TMP --update-catalog` builds the
   database from the catalog installed into TMP/usr/lib/systemd/catalog, and
   `journalctl --root=TMP --list-catalog` lists every id with its subject.

No root needed. Exit 0 pass, 1 fail, 77 skip (no journalctl).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CATALOG = os.path.join(SRC, "catalog", "calico-underlay.catalog")
HEX = r"[0-9a-f]{32}"


def code_ids():
    """{id: where} for every MESSAGE_ID the code defines or writes literally."""
    ids = {}
    for f in sorted(glob.glob(os.path.join(SRC, d, "*.[ch]")) for d in ("config", "daemon", "netlink")):
        for path in f:
            text = open(path).read()
            for m in re.finditer(r"#define\s+(LOG_ID_\w+)\s+\"(" + HEX + r")\"", text):
                ids[m.group(2)] = f"{os.path.relpath(path, SRC)}: {m.group(1)}"
            for m in re.finditer(r"MESSAGE_ID=(" + HEX + r")", text):
                ids.setdefault(m.group(1), os.path.relpath(path, SRC))
    return ids


def catalog_entries():
    """[(id, headers, body)] in file order."""
    out = []
    cur = None
    for line in open(CATALOG):
        line = line.rstrip("\n")
        m = re.match(r"^-- (\S+)(?: (\S+))?$", line)
        if m:
            cur = [m.group(1), {}, [], True]
            out.append(cur)
            continue
        if cur is None:
            continue
        if cur[3]:
            if not line:
                cur[3] = False
            elif ":" in line:
                k, _, v = line.partition(":")
                cur[1][k.strip()] = v.strip()
            continue
        cur[2].append(line)
    return [(i, h, "\n".join(b)) for i, h, b, _ in out]


class Catalog(unittest.TestCase):
    def test_ids_found_in_code(self):
        # A guard for the test itself: the scan must see the daemon's ids.
        self.assertGreaterEqual(len(code_ids()), 14, code_ids())

    def test_every_code_id_has_one_entry(self):
        ids = code_ids()
        entries = [e[0] for e in catalog_entries()]
        dup = sorted({i for i in entries if entries.count(i) > 1})
        self.assertEqual(dup, [], "ids with more than one catalog entry")
        missing = {i: w for i, w in ids.items() if i not in entries}
        self.assertEqual(missing, {}, "MESSAGE_IDs in the code without a catalog entry")
        extra = sorted(set(entries) - set(ids))
        self.assertEqual(extra, [], "catalog entries for ids the code never logs")

    def test_entries_are_complete(self):
        for mid, headers, body in catalog_entries():
            with self.subTest(mid=mid):
                self.assertRegex(mid, "^" + HEX + "$")
                for h in ("Subject", "Defined-By", "Documentation"):
                    self.assertTrue(headers.get(h), f"{mid}: no {h}:")
                self.assertEqual(headers["Defined-By"], "calico-underlay")
                self.assertIn("Traffic:", body, f"{mid}: what it means for traffic")
                self.assertIn("What to do:", body, f"{mid}: what to do")
                self.assertGreater(len(body.split("\n\n")), 2, f"{mid}: what happened, traffic, what to do")

    def test_journalctl_lists_every_id(self):
        jc = shutil.which("journalctl")
        if not jc:
            self.skipTest("no journalctl")
        with tempfile.TemporaryDirectory(prefix="cu-catalog-") as root:
            d = os.path.join(root, "usr", "lib", "systemd", "catalog")
            os.makedirs(d)
            shutil.copy(CATALOG, d)
            r = subprocess.run([jc, f"--root={root}", "--update-catalog"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", "journalctl's catalog parser complains")
            r = subprocess.run([jc, f"--root={root}", "--list-catalog"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            listed = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.strip())
            subjects = {i: h["Subject"] for i, h, _ in catalog_entries()}
            for mid in code_ids():
                self.assertEqual(listed.get(mid), "calico-underlay: " + subjects.get(mid, "?"), mid)
            # -x text: a field of the entry is substituted into the body.
            r = subprocess.run([jc, f"--root={root}", "--dump-catalog", "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00a"],
                               capture_output=True, text=True)
            self.assertIn("What to do:", r.stdout)


if __name__ == "__main__":
    if not shutil.which("journalctl"):
        print("SKIP: no journalctl")
        sys.exit(77)
    unittest.main(verbosity=2)
