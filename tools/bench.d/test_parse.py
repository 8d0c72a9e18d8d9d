#!/usr/bin/env python3
"""Self-test of tools/bench's parsers on canned output (python3 tools/bench.d/test_parse.py)."""

import os
import sys
import unittest

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "integration"))

import parse  # noqa: E402
import placement  # noqa: E402

PORT_STATS = """
  ######################## NIC statistics for port 0  ########################
  RX-packets: 3700320    RX-missed: 0          RX-bytes:  236820480
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 3700800    TX-errors: 0          TX-bytes:  236851200

  Throughput (since last show)
  Rx-pps:      1307081          Rx-bps:    669225592
  Tx-pps:      1307081          Tx-bps:    669225592
  ############################################################################

  ######################## NIC statistics for port 1  ########################
  RX-packets: 10    RX-missed: 2          RX-bytes:  640
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 11    TX-errors: 0          TX-bytes:  704

  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ############################################################################
testpmd> """

FWD_STATS = """
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 4433472        RX-dropped: 0             RX-total: 4433472
  TX-packets: 4433984        TX-dropped: 512           TX-total: 4434496
  RX-bursts : 129946352 [99% of 0 pkts + 1% of 32 pkts]
  TX-bursts : 138578 [0% of 0 pkts + 100% of 32 pkts]
  ----------------------------------------------------------------------------

  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 100            RX-dropped: 3             RX-total: 103
  TX-packets: 90             TX-dropped: 10            TX-total: 100
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 4433572        RX-dropped: 3             RX-total: 4433575
  TX-packets: 4434074        TX-dropped: 522           TX-total: 4434596
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++
"""

VHOSTD = """
2026-11-26T08:04:13.611 info stats p0 vring0: rx 0 pkts 0 bytes, tx 5542408 pkts 354714112 bytes, drops: no_buffer 7 too_big 0 broken 0 no_route 0, errors 0
2026-11-26T08:04:13.611 info stats p0 vring1: rx 5542409 pkts 354714176 bytes, tx 0 pkts 0 bytes, drops: no_buffer 0 too_big 0 broken 0 no_route 1, errors 2
"""

VIRTIO = """
virtio_ethdev_negotiate_features(): features after negotiate = 910018000
set_rxtx_funcs(): virtio: using inorder Tx path on port 0
set_rxtx_funcs(): virtio: using inorder Rx path on port 0
"""


class ParseTest(unittest.TestCase):
    def test_port_stats(self):
        s = parse.port_stats(PORT_STATS)
        self.assertEqual(sorted(s), [0, 1])
        self.assertEqual(s[0]["rx_pps"], 1307081)
        self.assertEqual(s[0]["rx_bytes"], 236820480)
        self.assertEqual(s[1]["rx_missed"], 2)

    def test_fwd_stats_and_polls(self):
        f = parse.fwd_stats(FWD_STATS.split("Accumulated")[0])
        self.assertEqual(f[0]["tx_dropped"], 512)
        self.assertEqual(f[0]["rx_bursts"], 129946352)
        self.assertEqual(f[0]["rx_empty_pct"], 99)
        self.assertNotIn("rx_bursts", f[1])
        self.assertEqual(f[1]["rx_dropped"], 3)
        polls = parse.poll_summary(f)
        self.assertAlmostEqual(polls["empty_share"], 0.99)

    def test_vhostd(self):
        before = parse.vhostd_stats(VHOSTD.replace("5542408", "5542000"))
        after = parse.vhostd_stats(VHOSTD)
        self.assertEqual(parse.count_vhostd_stats_lines(VHOSTD), 2)
        d = parse.vhostd_delta(before, after)
        self.assertEqual(d[("p0", "vring0")]["tx_packets"], 408)
        self.assertEqual(after[("p0", "vring1")]["no_route"], 1)
        self.assertEqual(after[("p0", "vring0")]["no_buffer"], 7)

    def test_virtio(self):
        v = parse.virtio_negotiation(VIRTIO)
        self.assertIn("IN_ORDER", v["feature_names"])
        self.assertEqual(v["paths"], ["Rx inorder", "Tx inorder"])

    def test_thread_shares(self):
        a = {"pmd0": {"run_s": 1.0, "wait_s": 0.0, "cpu_s": 1.0}}
        b = {"pmd0": {"run_s": 3.0, "wait_s": 8.0, "cpu_s": 3.0}}
        self.assertEqual(parse.thread_shares(a, b, 10.0)["pmd0"]["wait"], 0.8)


PMD = """
2026-11-26T09:08:52.186 info stats pmd0 cpu 1: polls busy 2202 empty 11230753 (empty share 100.0%), sleeps 10654, woken 1944 (by control 3), timeouts 8709, back-outs 0
2026-11-26T09:08:52.187 info stats p0 vring0: rx 0 pkts 0 bytes, tx 2202 pkts 140928 bytes, drops: no_buffer 0 too_big 0 broken 0 no_route 0, errors 0
2026-11-26T09:08:53.186 info stats pmd0 cpu 1: polls busy 2300 empty 11230800 (empty share 100.0%), sleeps 10700, woken 1990 (by control 3), timeouts 8710, back-outs 1
2026-11-26T09:08:53.186 info stats pmd1 cpu 2: polls busy 5 empty 6 (empty share 54.5%), sleeps 7, woken 8 (by control 0), timeouts 9, back-outs 10, cycles busy 300 idle 700 (busy share 30.0%)
2026-11-26T09:08:53.187 info stats pmd2 cpu 3: polls busy 5 empty 6 (empty share 54.5%), sleeps 7, woken 8 (by control 0), timeouts 9, back-outs 10, cycles busy 400 idle 600 (busy share 40.0%), rx first lines streamed in 4096 frames (store switches 3)
"""


CORE_CYCLES = """
  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 29819264       RX-dropped: 0             RX-total: 29819264
  TX-packets: 29819264       TX-dropped: 0             TX-total: 29819264
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++

  CPU cycles/packet=257.28 (total cycles=7672012823 / total io packets=29819264) at 2600 MHz Clock
"""


class CoreCyclesTest(unittest.TestCase):
    def test_core_cycles(self):
        c = parse.testpmd_core_cycles(CORE_CYCLES)
        self.assertEqual(c, {"busy_cycles": 7672012823, "packets": 29819264, "hz": 2600000000})
        self.assertIsNone(parse.testpmd_core_cycles("no cycles here"))


class IdleParseTest(unittest.TestCase):
    def test_pmd_blocks_and_delta(self):
        blocks = parse.vhostd_pmd_stats(PMD)
        self.assertEqual(len(blocks), 2)
        self.assertEqual(blocks[0]["pmd0"]["sleeps"], 10654)
        self.assertEqual(blocks[1]["pmd1"]["backouts"], 10)
        d = parse.pmd_delta(blocks[0], blocks[1])
        self.assertEqual(d["pmd0"]["woken"], 46)
        self.assertEqual(d["pmd0"]["busy"], 98)
        self.assertEqual(d["pmd1"]["timeouts"], 9)
        self.assertEqual(d["pmd1"]["busy_cycles"], 300)
        self.assertEqual(d["pmd0"]["idle_cycles"], 0)  # a line without cycles reads 0
        self.assertEqual(d["pmd1"]["streamed"], 0)  # nor streamed frames
        self.assertEqual((d["pmd2"]["streamed"], d["pmd2"]["store_switches"]), (4096, 3))
        polls = parse.pmd_poll_summary(d)
        self.assertEqual(polls["busy_cycles"], 700)
        self.assertAlmostEqual(polls["busy_share"], 0.35)
        self.assertEqual(polls["polls"], 98 + 47 + 5 + 6 + 5 + 6)
        self.assertAlmostEqual(polls["empty_share"], (47 + 6 + 6) / (98 + 47 + 5 + 6 + 5 + 6))
        self.assertEqual((polls["streamed"], polls["store_switches"]), (4096, 3))
        self.assertIsNone(parse.pmd_poll_summary({"pmd0": dict.fromkeys(d["pmd0"], 0)}))

    def test_process_cpu_delta(self):
        a = {10: {"comm": "vhostd", "cpu_s": 1.0, "run_s": 1.0},
             11: {"comm": "pmd0", "cpu_s": 5.0, "run_s": 5.0}}
        b = {10: {"comm": "vhostd", "cpu_s": 1.5, "run_s": 1.25},
             11: {"comm": "pmd0", "cpu_s": 15.0, "run_s": 15.0},
             12: {"comm": "iou-wrk-10", "cpu_s": 0.5, "run_s": 0.5}}
        d = parse.process_cpu_delta(a, b, 10.0)
        self.assertAlmostEqual(d["total"]["cpu"], 1.1)
        self.assertAlmostEqual(d["threads"]["vhostd"]["run"], 0.025)
        self.assertAlmostEqual(d["threads"]["iou-wrk-10"]["cpu"], 0.05)
        self.assertIn(os.getpid(), parse.process_cpu(os.getpid()))

    def test_ping_samples_and_percentile(self):
        rtts, lost = parse.ping_samples("0 5000\n1 lost\n2 7000\n3 lost 2000000000\n4 6000\n")
        self.assertEqual(rtts, [5000, 7000, 6000])
        self.assertEqual(lost, 2)
        v = sorted(rtts)
        self.assertEqual(parse.percentile(v, 0.5), 6000)
        self.assertEqual(parse.percentile(v, 0.99), 7000)
        self.assertEqual(parse.percentile(v, 0.0), 5000)
        self.assertIsNone(parse.percentile([], 0.5))


class PlacementTest(unittest.TestCase):
    @staticmethod
    def run_(pps, before, after, ok=True):
        return {"median_pps": pps, "hop_before": before, "hop_after": after, "ok": ok}

    def test_classify_and_matched_ratio(self):
        a = [self.run_(14e6, 190, 200), self.run_(6e6, 850, 870), self.run_(13e6, 210, 830),
             self.run_(15e6, 180, 190, ok=False)]
        b = [self.run_(10e6, 200, 230), self.run_(7e6, 880, 820), self.run_(12e6, 185, 380)]
        lowest = placement.floor(a + b)
        self.assertEqual(lowest, 180)
        self.assertEqual([placement.classify(r, lowest) for r in a], ["near", "far", "mixed", "near"])
        self.assertEqual(placement.classify(b[2], lowest), "mixed")  # 185 near, 380 beyond 2 x 180
        self.assertIsNone(placement.classify({"hop_before": None, "hop_after": 200}, lowest))
        ratio, na, nb = placement.matched_ratio(a, b, lowest, "near")
        self.assertEqual((na, nb), (1, 1))  # the failed A run and the mixed ones are left out
        self.assertAlmostEqual(ratio, 1.4)
        ratio, na, nb = placement.matched_ratio(a, b, lowest, "far")
        self.assertAlmostEqual(ratio, 6 / 7)
        self.assertEqual(placement.matched_ratio(a[:1], b[1:2], lowest, "near"), (None, 1, 0))

    def test_measure_reports_a_missing_binary(self):
        hop, why = placement.measure("/nonexistent/cpu-hop")
        self.assertIsNone(hop)
        self.assertIn("cpu-hop did not run", why)


if __name__ == "__main__":
    unittest.main()
