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
import shutil
import subprocess
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


def our_any(routes, protos=("211", "212", "213")):
    """Routes carrying any of these protocols: (dst, proto, table)."""
    return sorted((r["dst"], cuit.proto_of(r), str(r.get("table", "main"))) for r in routes
                  if cuit.proto_of(r) in protos)


BLOCKS = (test_host.BLOCK1, test_host.BLOCK2, test_host.BLOCK3)


class RouteOwnerChanges(HostCase):
    """6. The runtime record names the protocol and table in use; routes of an old
    pair are ours to withdraw. (HostCase.daemon() counts every protocol but 211 as
    foreign: the runs with another protocol check the routes themselves.)"""

    def run_other(self, *args, rc=0):
        res = self.d.run(*args)
        self.assertRc(res, rc)
        return res

    def json_other(self, rc=0):
        return self.run_other("--check", "--format", "json", rc=rc).json()

    def test_protocol_change(self):
        self.forwarding(True)
        with self.step("--once with routeProtocol 211: the record names 211 and the table"):
            self.daemon("--once", rc=0)
            rec = self.d.record()
            self.assertEqual((rec.get("route_protocol"), rec.get("route_table")), ("211", "252"), rec)
            self.assertEqual(our_any(self.node.routes()), sorted((b, "211", "252") for b in BLOCKS))
        self.d.write_settings(routeProtocol=212)
        with self.step("routeProtocol 212: --check plans to withdraw the 211 routes and says why"):
            doc = self.json_other(rc=0)
            dels = sorted((c["dst"], c["protocol"]) for c in doc["changes"] if c["action"] == "delete-route")
            adds = sorted((c["dst"], c["protocol"]) for c in doc["changes"] if c["action"] == "add-route")
            self.assertEqual(dels, sorted((b, 211) for b in BLOCKS), doc["changes"])
            self.assertEqual(adds, sorted((b, 212) for b in BLOCKS), doc["changes"])
            self.assertIn("route-owner-changed", codes(doc, "warning"), doc["findings"])
        with self.step("--once: only 212 routes remain; the record names 212"):
            self.run_other("--once", rc=0)
            self.assertEqual(our_any(self.node.routes()), sorted((b, "212", "252") for b in BLOCKS))
            self.assertEqual(self.d.record().get("route_protocol"), "212")
            # The rules follow: 212's pair only.
            self.assertEqual(cuit.our_rules(self.node, 211), [])
            self.assertEqual(len(cuit.our_rules(self.node, 212)), 2)
            doc = self.json_other(rc=0)
            self.assertEqual(doc["changes"], [])
        with self.step("routeProtocol 213, then --cleanup: the 212 routes go too"):
            self.d.write_settings(routeProtocol=213)
            self.run_other("--cleanup", rc=0)
            self.assertEqual(our_any(self.node.routes()), [])
            self.assertEqual(cuit.our_rules(self.node, 212) + cuit.our_rules(self.node, 213), [])
            self.assertIsNone(self.d.record())

    def test_back_to_overlay_after_protocol_change(self):
        self.forwarding(True)
        self.daemon("--once", rc=0)
        self.d.write_settings(routeProtocol=212)
        self.set_resources(nat=True)
        with self.step("overlay with routeProtocol 212: the 211 routes are withdrawn, the record goes"):
            doc = self.json_other(rc=0)
            self.assertEqual(sorted(c["dst"] for c in doc["changes"] if c["action"] == "delete-route"),
                             sorted(BLOCKS), doc["changes"])
            self.run_other("--once", rc=0)
            self.assertEqual(our_any(self.node.routes()), [])
            self.assertEqual(cuit.our_rules(self.node, 211), [])
            self.assertIsNone(self.d.record())
            self.assertEqual(self.node.proxy_arp("eth0"), 0)


class DamagedRecord(HostCase):
    """7. A record that does not parse, or does not match its device, is reported and
    kept; nothing is restored from it, nor onto another device."""

    def damage(self, text):
        with open(self.d.record_path, "w") as f:
            f.write(text)
        return text

    def assert_kept(self, text):
        with open(self.d.record_path) as f:
            self.assertEqual(f.read(), text, "the damaged record was replaced")

    def test_garbage(self):
        self.forwarding(True)
        self.daemon("--once", rc=0)            # proxy_arp 1, delay 0: ours
        text = self.damage("ifname=eth0\nproxy_arp=\x01garbage\n")
        with self.step("--check: blocking record-damaged, exit 1"):
            doc = self.check_json(rc=1)
            self.assertIn("record-damaged", codes(doc, "blocking"), doc["findings"])
            self.assertFalse([c for c in doc["changes"] if c["action"].startswith("set-proxy")], doc["changes"])
        with self.step("--once: an error, exit 1; the record kept as it was"):
            res = self.daemon("--once", rc=1)
            self.assertIn("does not parse", res.stderr, str(res))
            self.assert_kept(text)
        with self.step("--cleanup: routes withdrawn, nothing restored, an error, exit 1; record kept"):
            res = self.daemon("--cleanup", rc=1)
            self.assertIn("does not parse", res.stderr, str(res))
            self.assert_kept(text)
            self.assertEqual(self.node.proxy_arp("eth0"), 1, "restored from nothing")
            self.assertEqual(cuit.our_routes(self.node.routes()), [])
            self.daemon("--once", rc=1)         # routes back for the next step
        with self.step("back to overlay: the uplink is left alone (nothing to restore from), record kept"):
            self.set_resources(nat=True)
            res = self.daemon("--once", rc=1)
            self.assert_kept(text)
            self.assertEqual(self.node.proxy_arp("eth0"), 1, "restored from nothing")
            self.assertEqual(cuit.our_routes(self.node.routes()), [])   # routes still withdrawn

    def test_index_of_another_device(self):
        self.forwarding(True)
        self.node.write_sysctl("net/ipv4/conf/lo/proxy_arp", 0)
        self.node.write_sysctl("net/ipv4/conf/eth0/proxy_arp", 0)
        self.daemon("--once", rc=0)
        rec = self.d.record()
        lo_index = self.node.link("lo")["ifindex"]
        self.assertNotEqual(int(rec["ifindex"]), lo_index)
        with open(self.d.record_path) as f:
            text = f.read().replace("ifindex=%s" % rec["ifindex"], "ifindex=%d" % lo_index)
        self.damage(text)
        self.set_resources(nat=True)
        with self.step("--check: blocking record-damaged naming both devices"):
            doc = self.check_json(rc=1)
            msg = [f["message"] for f in doc["findings"] if f["code"] == "record-damaged"]
            self.assertTrue(msg and "lo" in msg[0] and "eth0" in msg[0], doc["findings"])
            self.assertFalse([c for c in doc["changes"] if c["action"].startswith("set-proxy")], doc["changes"])
        with self.step("--once: nothing restored onto lo or eth0; the record kept"):
            self.daemon("--once", rc=1)
            self.assertEqual(self.node.proxy_arp("lo"), 0)
            self.assertEqual(self.node.proxy_arp("eth0"), 1)
            self.assert_kept(text)
        with self.step("the operator removes it: the next --once works again"):
            os.unlink(self.d.record_path)
            self.daemon("--once", rc=0)


class RecordFolder(HostCase):
    """8. The temporary record file is never followed through a link; a runtime
    folder owned by another user is refused."""

    def test_tmp_symlink_not_followed(self):
        self.forwarding(True)
        victim = os.path.join(self.d.dir, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.symlink(victim, os.path.join(self.d.runtime, ".state.tmp"))
        self.daemon("--once", rc=0)
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n", "the record was written through a symlink")
        self.assertEqual(self.d.record()["ifname"], "eth0")
        self.assertFalse(os.path.islink(self.d.record_path))
        self.assertFalse(os.path.lexists(os.path.join(self.d.runtime, ".state.tmp")))

    def test_folder_of_another_user(self):
        self.forwarding(True)
        os.chown(self.d.runtime, 65534, 65534)
        before = cuit.snapshot(self.node, ("eth0",))
        with self.step("--once: refused, exit 1, nothing changed"):
            res = self.daemon("--once", rc=1)
            self.assertIn("owned by uid 65534", res.stderr, str(res))
            after = cuit.snapshot(self.node, ("eth0",))
            for key in before:
                self.assertSame(before[key], after[key], key)
            self.assertEqual(os.listdir(self.d.runtime), [])
        with self.step("--check: blocking record-damaged"):
            doc = self.check_json(rc=1)
            self.assertIn("record-damaged", codes(doc, "blocking"), doc["findings"])
        with self.step("--cleanup: refused, exit 1, nothing changed"):
            res = self.daemon("--cleanup", rc=1)
            self.assertIn("owned by uid 65534", res.stderr, str(res))
            after = cuit.snapshot(self.node, ("eth0",))
            for key in before:
                self.assertSame(before[key], after[key], key)
            self.assertEqual(os.listdir(self.d.runtime), [])

    def test_unit_folder_through_link_owned_by_dynamic_user(self):
        """The packaged unit's folder: $RUNTIME_DIRECTORY is a link to it (DynamicUser=
        with RuntimeDirectoryPreserve=yes) and its owner is the unit's dynamic user.
        Root's --once and --check take it; one that others may write stays refused."""
        self.forwarding(True)
        real = self.d.runtime + ".private"
        os.rename(self.d.runtime, real)
        os.symlink(real, self.d.runtime)
        with self.step("--once through the link: the record is written in the folder"):
            self.daemon("--once", rc=0)
            self.assertEqual(self.d.record()["ifname"], "eth0")
            self.assertTrue(os.path.isfile(os.path.join(real, "state")))
        os.chown(real, 61300, 61300)  # a DynamicUser= uid (61184-65519)
        with self.step("--check as root on the unit's folder: no record-damaged"):
            doc = self.check_json(rc=None)
            self.assertNotIn("record-damaged", codes(doc, "blocking"), doc["findings"])
        os.chmod(real, 0o777)
        with self.step("--check: the same folder writable by others is refused"):
            doc = self.check_json(rc=1)
            self.assertIn("record-damaged", codes(doc, "blocking"), doc["findings"])


NOBODY = 65534


class Privileges(HostCase):
    """--once and --cleanup without CAP_NET_ADMIN (over the node's network namespace: a
    user namespace of its own has every capability, yet not over a netns it does not
    own) change nothing and exit 2 (no access to
    rtnetlink, as the man page's EXIT STATUS says), not 1 (a failed action); with the
    capability alone, as the unit runs it, --once converges. --format with a mode that
    does not take it is a usage error (exit 2), not silently text."""

    def setUp(self):
        super().setUp()
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv (util-linux)")
        # readable by nobody, the runtime folder its own: only the capability is missing
        os.chmod(self.d.dir, 0o755)
        os.chmod(self.d.resources, 0o755)
        for n in os.listdir(self.d.resources):
            os.chmod(os.path.join(self.d.resources, n), 0o644)
        os.chmod(self.d.config, 0o644)
        os.chown(self.d.runtime, NOBODY, NOBODY)

    def run_as(self, prefix, *args):
        cmd = prefix + cuit.DAEMON_WRAPPER + [self.d.bin, "--config", self.d.config] + list(args)
        p = self.node.exec(*cmd, check=False, timeout=60 * cuit.TIMEOUT_SCALE, env=self.d.env())
        res = cuit.Result(["(in %s)" % self.node.name] + cmd, p)
        self.log("%s -> exit %d" % (" ".join(args), res.rc))
        return res

    def test_without_cap_net_admin(self):
        self.forwarding(True)
        nobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--inh-caps=-all"]
        root_without = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
        # every capability, but in a user namespace that does not own the node's netns
        # (where user namespaces are available: user.max_user_namespaces may be 0)
        userns = ["unshare", "--user", "--map-root-user"]
        cases = [("nobody", nobody), ("root without CAP_NET_ADMIN", root_without)]
        if subprocess.run(userns + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            cases.append(("root of a user namespace of its own", userns))
        else:
            self.log("no user namespaces here: that case is not run")
        for who, prefix in cases:
            for mode in ("--once", "--cleanup"):
                with self.step("%s as %s: exit 2, nothing changed" % (mode, who)):
                    before = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                    res = self.run_as(prefix, mode)
                    self.assertRc(res, 2)
                    self.assertIn("needs CAP_NET_ADMIN", res.stderr, str(res))
                    if prefix is userns:
                        self.assertIn("in the user namespace that owns its network namespace", res.stderr, str(res))
                    self.assertNotIn("FAILED", res.stdout, str(res))
                    after = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                    for key in before:
                        self.assertSame(before[key], after[key], "%s by %s as %s" % (key, mode, who))
                    self.assertEqual(os.listdir(self.d.runtime), [], "wrote in the runtime folder")
        with self.step("--once as nobody with CAP_NET_ADMIN alone (as the unit): exit 0, converged"):
            res = self.run_as(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                               "--inh-caps=+net_admin", "--ambient-caps=+net_admin"], "--once")
            self.assertRc(res, 0)
            self.assert_ours(self.our_full_state())
            self.assertEqual(self.node.proxy_arp("eth0"), 1)

    def test_format_only_where_taken(self):
        for args in (("--once", "--format", "json"), ("--format", "json", "--once"), ("--once", "--format", "text"),
                     ("--cleanup", "--format", "json"), ("--format", "json")):
            with self.step("%s: usage error, exit 2, nothing changed" % " ".join(args)):
                before = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                res = self.daemon(*args, rc=2)
                self.assertIn("--format goes with --check and --upstream-routes", res.stderr, str(res))
                self.assertEqual(res.stdout, "", str(res))
                after = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                for key in before:
                    self.assertSame(before[key], after[key], "%s by %s" % (key, " ".join(args)))
        with self.step("--check --format json still works"):
            self.check_json(rc=1)


if __name__ == "__main__":
    cuit.main()
