"""An OPC UA client that is not ours: FreeOpcUa's asyncua (from PyPI), written from the source's
address space as docs/opcua.md describes it.

It browses Objects to the source's folder and components, reads the tick's origin and rate,
subscribes to every stream and checks that every tick arrives once, in order, at its data time;
reads a stream's history (HistoryRead, following continuation points: the source is started
with a history rate that pages it) and checks every tick from the first is there once, with the
values the subscription saw; reads an unknown node (BadNodeIdUnknown); and connects again signed and encrypted
(Basic256Sha256) with a user name, then with a wrong password (refused).

usage: opcua_client.py HOST PORT STREAMS COMPONENTS SECONDS USER PASSWORD
"""

import asyncio
import datetime
import sys
import tempfile
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

NAMESPACE = "urn:failover-lab:data-source"


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def tick_of(dv, origin, rate):
    """The tick of a value: from its source timestamp, the tick's origin and rate."""
    ts = dv.SourceTimestamp
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.timezone.utc)
    ms = (ts - EPOCH) // datetime.timedelta(milliseconds=1)
    return round((ms - origin) * rate / 1000.0)


def fail(why):
    print("FAILED:", why)
    sys.exit(1)


class Collector:
    def __init__(self):
        self.values = {}

    def datachange_notification(self, node, val, data):
        stream = int(node.nodeid.Identifier.split("-")[1])
        self.values.setdefault(stream, []).append(data.monitored_item.Value)


async def browse_source(client):
    ns = await client.get_namespace_index(NAMESPACE)
    objects = client.nodes.objects
    source = None
    for child in await objects.get_children():
        name = await child.read_browse_name()
        if name.Name == "FailoverLabSource" and name.NamespaceIndex == ns:
            source = child
    if source is None:
        fail("no FailoverLabSource under Objects")
    components, streams = {}, {}
    for child in await source.get_children():
        name = (await child.read_browse_name()).Name
        if name.startswith("Component"):
            members = await child.get_children()
            names = [(await m.read_browse_name()).Name for m in members]
            if "Up" not in names:
                fail(f"{name} has no Up flag: {names}")
            components[name] = [m for m, n in zip(members, names) if n.startswith("Stream")]
            for m, n in zip(members, names):
                if n.startswith("Stream"):
                    streams[int(n[len("Stream"):])] = m
    return ns, source, components, streams


async def main():
    host, port, n_streams, n_components, seconds, user, password = sys.argv[1:8]
    n_streams, n_components, seconds = int(n_streams), int(n_components), float(seconds)
    url = f"opc.tcp://{host}:{port}/"

    async with Client(url=url, timeout=10) as client:
        ns, source, components, streams = await browse_source(client)
        if len(components) != n_components or sorted(streams) != list(range(n_streams)):
            fail(f"expected {n_components} components and {n_streams} streams, "
                 f"found {sorted(components)} and {sorted(streams)}")
        origin = await client.get_node(ua.NodeId("source.tick-origin-unix-ms", ns)).read_value()
        rate = await client.get_node(ua.NodeId("source.tick-rate-hz", ns)).read_value()
        up = await client.get_node(ua.NodeId("component-0.up", ns)).read_value()
        if up is not True:
            fail(f"component 0 is not up: {up!r}")

        handler = Collector()
        sub = await client.create_subscription(100, handler)
        await sub.subscribe_data_change(list(streams.values()), sampling_interval=0,
                                        queuesize=int(rate * 4) + 10)
        await asyncio.sleep(seconds)
        await sub.delete()

        for stream in range(n_streams):
            values = handler.values.get(stream, [])
            ticks = []
            for dv in values:
                if dv.SourceTimestamp is None:
                    # The value a monitored item starts with when it is made before the
                    # source's first tick: no value yet (docs/opcua.md), so no tick.
                    if dv.Value is None or dv.Value.Value is None:
                        continue
                    fail(f"stream {stream}: a value without its source timestamp: {dv}")
                status = getattr(dv, "StatusCode", None) or getattr(dv, "StatusCode_", None)
                if status is not None and not status.is_good():
                    fail(f"stream {stream}: a Bad value {status}")
                ticks.append(tick_of(dv, origin, rate))
            # The first value is the current one when the item is made; every tick after it.
            if len(ticks) < seconds * rate * 0.5:
                fail(f"stream {stream}: only {len(ticks)} values in {seconds} s at {rate} Hz")
            gaps = [(a, b) for a, b in zip(ticks, ticks[1:]) if b != a + 1]
            if gaps:
                fail(f"stream {stream}: ticks not one after another: {gaps[:5]}")
        print(f"subscribed: {n_streams} streams, every tick once and in order "
              f"({sum(len(v) for v in handler.values.values())} values)")

        seen = {}
        for dv in handler.values.get(0, []):
            seen[tick_of(dv, origin, rate)] = dv.Value.Value
        start = EPOCH + datetime.timedelta(milliseconds=origin)
        history = await streams[0].read_raw_history(starttime=start, endtime=None)
        ticks = [tick_of(dv, origin, rate) for dv in history]
        if not ticks or ticks != list(range(len(ticks))):
            fail(f"stream 0's history is not every tick from 0 once: {ticks[:10]}...")
        if max(seen) > ticks[-1]:
            fail(f"stream 0's history ends at tick {ticks[-1]}, before {max(seen)} was seen")
        differ = [t for t, dv in zip(ticks, history) if t in seen and seen[t] != dv.Value.Value]
        if differ:
            fail(f"stream 0's history differs from what the subscription saw at ticks {differ[:5]}")
        print(f"history: stream 0, ticks 0 to {ticks[-1]}, every one once, "
              f"the subscription's values")

    async with Client(url=url, timeout=10) as client:
        try:
            await client.get_node(ua.NodeId("no-such-node", ns)).read_value()
            fail("a read of an unknown node did not fail")
        except ua.uaerrors.BadNodeIdUnknown:
            print("unknown node: BadNodeIdUnknown")

    with tempfile.TemporaryDirectory() as pki:
        cert, key = Path(pki) / "client.der", Path(pki) / "client.pem"
        await setup_self_signed_certificate(
            key, cert, "urn:failover-lab:asyncua-test", "localhost",
            [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "asyncua test"})
        secure = Client(url=url, timeout=10)
        secure.application_uri = "urn:failover-lab:asyncua-test"
        await secure.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        secure.set_user(user)
        secure.set_password(password)
        async with secure:
            rate2 = await secure.get_node(ua.NodeId("source.tick-rate-hz", ns)).read_value()
            if rate2 != rate:
                fail(f"signed and encrypted read {rate2}, not {rate}")
            print("signed and encrypted with a user name: read")

        wrong = Client(url=url, timeout=10)
        wrong.application_uri = "urn:failover-lab:asyncua-test"
        await wrong.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                                 mode=ua.MessageSecurityMode.SignAndEncrypt)
        wrong.set_user(user)
        wrong.set_password(password + "-wrong")
        try:
            async with wrong:
                fail("a wrong password was taken")
        except ua.UaStatusCodeError as e:
            print(f"wrong password refused: {type(e).__name__}")
    print("all checks passed")


asyncio.run(main())
