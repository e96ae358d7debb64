"""network connect/disconnect of running sandboxes: interfaces, addresses, names, events, errors,
and what a restarted daemon finds again."""

from __future__ import annotations

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import EndpointIPAMConfig, EndpointSettings
from tests.integration.test_network_api import call
from tests.integration.test_network_dns import resolve
from tests.integration.test_network_sandbox import _free_subnet, cid, env, in_netns  # noqa: F401 (fixture)
from tests.integration.test_network_user import create


def ping(netns_path: str, address: str) -> bool:
    """Reachable: up to three tries, so a loaded machine does not fail a positive check."""
    return any(in_netns(netns_path, "busybox", "ping", "-c", "1", "-W", "1", address).returncode == 0
               for _ in range(3))


def test_connect_disconnect_running_sandbox(env):
    svc = env.service()
    one, two = "c" + cid()[:8], "c" + cid()[:8]
    subnet_two = _free_subnet()
    create(env, svc, one, str(_free_subnet()))
    create(env, svc, two, str(subnet_two))
    a, b = cid(), cid()
    info_a = env.sandbox(svc, a, one, container_name="app")
    info_b = env.sandbox(svc, b, two, container_name="db")
    ip_b = info_b.endpoints[0].ip_address
    assert not ping(info_a.netns_path, ip_b)

    static = str(subnet_two.network_address + 77)
    status, body = call(env, svc, "POST", f"/networks/{two}/connect",
                        {"Container": "app", "EndpointConfig": {"Aliases": ["web"],
                                                                "IPAMConfig": {"IPv4Address": static}}})
    assert (status, body) == (200, None)
    addr = in_netns(info_a.netns_path, "ip", "-o", "-4", "addr", "show", "dev", "eth1").stdout
    assert f"inet {static}/24" in addr
    assert ping(info_a.netns_path, ip_b) and ping(info_b.netns_path, static)
    settings = svc.endpoint_settings_json(a, one)
    assert set(settings["Networks"]) == {one, two}
    assert settings["Networks"][two]["IPAddress"] == static and settings["Networks"][two]["Aliases"] == ["web"]
    assert set(svc.inspect(two).containers) == {a, b}
    # names: b resolves a by its alias on the shared network, a resolves b
    assert resolve(env, info_b.netns_path, "web", "app")[0][1] == [static]
    assert resolve(env, info_a.netns_path, "db")[0][1] == [ip_b]
    connects = [e for e in env.events.seen if e[1] == "connect" and e[2] == svc.find(two).id]
    assert connects[-1][3] == {"container": a, "name": two, "type": "bridge"}

    # errors, with nothing changed
    assert call(env, svc, "POST", f"/networks/{two}/connect", {"Container": a[:12]}) == (
        403, {"message": f"endpoint with name app already exists in network {two}"})
    assert call(env, svc, "POST", "/networks/nosuch/connect", {"Container": "app"})[0] == 404
    assert call(env, svc, "POST", f"/networks/{two}/disconnect", {"Container": "nobody"})[0] == 409
    assert call(env, svc, "POST", "/networks/host/connect", {"Container": "app"})[0] == 403

    # a restarted daemon finds both endpoints again
    env.run(svc.stop())
    svc2 = env.service()
    env.run(svc2.reconcile({a: "app", b: "db"}))
    assert set(svc2.endpoint_settings_json(a, one)["Networks"]) == {one, two}
    assert svc2.endpoint_settings_json(a, one)["Networks"][two]["Aliases"] == ["web"]

    assert call(env, svc2, "POST", f"/networks/{two}/disconnect", {"Container": "app"}) == (200, None)
    assert "eth1" not in in_netns(info_a.netns_path, "ip", "-o", "link").stdout
    assert not ping(info_a.netns_path, ip_b)
    assert set(svc2.inspect(two).containers) == {b}
    assert env.db.query("SELECT address FROM ip_allocs WHERE owner = ?", (a,)) == [(info_a.endpoints[0].ip_address,)]
    assert call(env, svc2, "POST", f"/networks/{two}/disconnect", {"Container": "app"}) == (
        403, {"message": f"container {a} is not connected to network {two}"})
    assert ("network", "disconnect", svc2.find(two).id, {"container": a, "name": two, "type": "bridge"}) \
        in env.events.seen

    # the first network goes: the next one takes the default route
    env.run(svc2.connect(two, "app"))
    env.run(svc2.disconnect(one, "app"))
    route = in_netns(info_a.netns_path, "ip", "route", "show", "default").stdout
    assert f"default via {subnet_two.network_address + 1} dev eth" in route
    env.run(svc2.connect(one, "app"))
    env.run(svc2.disconnect(two, "app"))
    # the first network can go too; the container is then on no network
    env.run(svc2.disconnect(one, "app"))
    assert svc2.endpoint_settings_json(a, one)["Networks"] == {"none": svc2.endpoint_settings_json(a, one)["Networks"]["none"]}
    assert "eth0" not in in_netns(info_a.netns_path, "ip", "-o", "link").stdout
    env.run(svc2.release_sandbox(a))


def test_static_ip_and_mac_at_start(env):
    svc = env.service()
    name = "s" + cid()[:8]
    subnet = _free_subnet()
    create(env, svc, name, str(subnet))
    wanted = str(subnet.network_address + 50)
    config = EndpointSettings(ipam_config=EndpointIPAMConfig(ipv4_address=wanted), mac_address="02:aa:bb:cc:dd:ee")
    info = env.sandbox(svc, cid(), name, endpoint_config=config)
    assert info.endpoints[0].ip_address == wanted and info.endpoints[0].mac_address == "02:aa:bb:cc:dd:ee"
    link = in_netns(info.netns_path, "ip", "-o", "link", "show", "eth0").stdout
    assert "02:aa:bb:cc:dd:ee" in link
    with pytest.raises(errdefs.Forbidden, match="Address already in use"):
        env.sandbox(svc, cid(), name, endpoint_config=config)
    with pytest.raises(errdefs.InvalidParameter, match="no configured subnet"):
        env.sandbox(svc, cid(), name, endpoint_config=EndpointSettings(
            ipam_config=EndpointIPAMConfig(ipv4_address="192.0.2.9")))
    with pytest.raises(errdefs.InvalidParameter, match="user defined networks only"):
        env.sandbox(svc, cid(), "bridge", endpoint_config=config)
    assert len(list(p for p in env.config.netns_dir.iterdir() if not p.name.startswith("."))) == 1


def test_several_networks_at_start(env):
    svc = env.service()
    one, two = "m" + cid()[:8], "m" + cid()[:8]
    create(env, svc, one, str(_free_subnet()))
    create(env, svc, two, str(_free_subnet()))
    a = cid()
    info = env.sandbox(svc, a, one, container_name="multi",
                       more_networks={two: EndpointSettings(aliases=["second"])})
    assert [(e.network_name, e.aliases) for e in info.endpoints] == [(one, []), (two, ["second"])]
    links = in_netns(info.netns_path, "ip", "-o", "-4", "addr").stdout
    assert info.endpoints[0].ip_address in links and info.endpoints[1].ip_address in links
    # a failure on a later network undoes the whole sandbox
    b = cid()
    with pytest.raises(errdefs.NotFound):
        env.sandbox(svc, b, one, more_networks={"nosuch": None})
    assert not (env.config.netns_dir / b[:12]).exists()
    assert env.db.query("SELECT * FROM ip_allocs WHERE owner = ?", (b,)) == []


def test_check_endpoints_and_the_change_hook(env):
    svc = env.service()
    name = "k" + cid()[:8]
    subnet = _free_subnet()
    create(env, svc, name, str(subnet))
    svc.check_endpoints(name, {name: EndpointSettings(aliases=["x"], ipam_config=EndpointIPAMConfig(
        ipv4_address=str(subnet.network_address + 9)))})
    with pytest.raises(errdefs.NotFound, match="network nosuch not found"):
        svc.check_endpoints("nosuch", {"nosuch": None})
    with pytest.raises(errdefs.InvalidParameter, match="user defined networks only"):
        svc.check_endpoints("bridge", {"bridge": EndpointSettings(ipam_config=EndpointIPAMConfig(
            ipv4_address=str(env.subnet.network_address + 9)))})
    with pytest.raises(errdefs.InvalidParameter, match="network-scoped alias"):
        svc.check_endpoints("bridge", {"bridge": EndpointSettings(aliases=["x"])})

    told = []
    svc.endpoints_changed = lambda container_id, info: told.append((container_id, info))
    a = cid()
    env.sandbox(svc, a, "bridge", container_name="hooked", port_bindings=None)
    env.run(svc.connect(name, "hooked"))
    assert told[-1][0] == a and [e.network_name for e in told[-1][1].endpoints] == ["bridge", name]
    env.run(svc.disconnect(name, "hooked"))
    assert [e.network_name for e in told[-1][1].endpoints] == ["bridge"]


class StoppedContainers:
    """The container service's side of connect/disconnect for containers that are not running."""

    def __init__(self) -> None:
        self.networks: dict[str, dict[str, object]] = {"sleeper": {}}

    def connect_stopped(self, ref, network_name, network_id, config):
        if ref not in self.networks:
            raise errdefs.NotFound(f"No such container: {ref}")
        self.networks[ref][network_name] = config
        return ref

    def disconnect_stopped(self, ref, network_name, network_id):
        if self.networks.get(ref, {}).pop(network_name, "missing") == "missing":
            raise errdefs.Forbidden(f"container {ref} is not connected to network {network_name}")
        return ref


def test_connect_of_a_stopped_container_goes_to_its_record(env):
    svc = env.service()
    name = "st" + cid()[:8]
    create(env, svc, name, str(_free_subnet()))
    stopped = svc.stopped_containers = StoppedContainers()
    config = {"Container": "sleeper", "EndpointConfig": {"Aliases": ["napping"]}}
    assert call(env, svc, "POST", f"/networks/{name}/connect", config) == (200, None)
    assert stopped.networks["sleeper"][name].aliases == ["napping"]
    assert call(env, svc, "POST", "/networks/bridge/connect",
                {"Container": "sleeper", "EndpointConfig": {"Aliases": ["x"]}})[0] == 400
    assert call(env, svc, "POST", f"/networks/{name}/connect", {"Container": "ghost"}) == (
        404, {"message": "No such container: ghost"})
    assert call(env, svc, "POST", f"/networks/{name}/disconnect", {"Container": "sleeper"}) == (200, None)
    assert call(env, svc, "POST", f"/networks/{name}/disconnect", {"Container": "sleeper"})[0] == 403
    assert svc.inspect(name).containers == {}  # nothing joined: the container is not running
