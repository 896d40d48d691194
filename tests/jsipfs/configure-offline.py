#!/usr/bin/env python3
"""Makes an IPFS repo config offline and loopback-only before its daemon first starts.

usage: configure-offline.py CONFIG_FILE API_PORT SWARM_PORT GATEWAY_PORT RPC_PORT

Empty bootstrap list, no mDNS, no DHT or delegated routing, no NAT port mapping, no
announce addresses, every listener on 127.0.0.1. Works for js-ipfs and Kubo configs.
"""
import json
import sys

path, api, swarm, gateway, rpc = sys.argv[1], *map(int, sys.argv[2:6])
with open(path) as f:
    config = json.load(f)
addresses = config.setdefault("Addresses", {})
addresses["API"] = f"/ip4/127.0.0.1/tcp/{api}"
addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{gateway}"
addresses["RPC"] = f"/ip4/127.0.0.1/tcp/{rpc}"
addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{swarm}"]
addresses["Announce"] = []
addresses["NoAnnounce"] = []
addresses["Delegates"] = []
config["Bootstrap"] = []
discovery = config.setdefault("Discovery", {})
discovery.setdefault("MDNS", {})["Enabled"] = False
discovery.setdefault("webRTCStar", {})["Enabled"] = False
config.setdefault("Swarm", {})["DisableNatPortMap"] = True
config["Routing"] = {"Type": "none"}
# Kubo 0.3x: no autoconf, no public routers.
config["AutoConf"] = {"Enabled": False}
with open(path, "w") as f:
    json.dump(config, f, indent=2)
