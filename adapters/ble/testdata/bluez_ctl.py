"""Drives python3-dbusmock's BlueZ template for the ble adapter's tests.

Reads one JSON command per line on stdin and answers one line on stdout: "ok <json>" or
"error <message>". Advertisement data is sent from here because dbus-next cannot marshal
a{qv} values.

Usage: /usr/bin/python3 bluez_ctl.py <bus address>
"""

import json
import sys

import dbus

BLUEZ = "org.bluez"
MOCK = "org.freedesktop.DBus.Mock"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"

bus = dbus.bus.BusConnection(sys.argv[1])


def obj(path, iface):
    return dbus.Interface(bus.get_object(BLUEZ, path), iface)


def device_path(adapter, address):
    return f"/org/bluez/{adapter}/dev_{address.replace(':', '_').upper()}"


def has_bluez(_cmd):
    return bool(bus.name_has_owner(BLUEZ))


def add_adapter(cmd):
    return str(obj("/", "org.bluez.Mock").AddAdapter(cmd["adapter"], "outpost-test"))


def remove_adapter(cmd):
    obj("/", "org.bluez.Mock").RemoveAdapter(cmd["adapter"])


def add_device(cmd):
    return str(obj("/", "org.bluez.Mock").AddDevice(cmd["adapter"], cmd["address"], cmd.get("alias", "sensor")))


def set_powered(cmd):
    path = f"/org/bluez/{cmd['adapter']}"
    obj(path, dbus.PROPERTIES_IFACE).Set(ADAPTER, "Powered", dbus.Boolean(cmd["powered"]))


def calls(cmd):
    """Names of the methods called on an adapter, oldest first."""
    return [str(c[1]) for c in obj(f"/org/bluez/{cmd['adapter']}", MOCK).GetCalls()]


def discovery_filter(cmd):
    """The filter the client set with SetDiscoveryFilter, as JSON values."""
    f = obj(f"/org/bluez/{cmd['adapter']}", dbus.PROPERTIES_IFACE).Get(ADAPTER, "DiscoveryFilter")
    return {str(k): (bool(v) if isinstance(v, dbus.Boolean) else str(v)) for k, v in f.items()}


def advertise(cmd):
    """Emits PropertiesChanged on a device as BlueZ does for one advertisement."""
    changed = {}
    if "rssi" in cmd:
        changed["RSSI"] = dbus.Int16(cmd["rssi"])
    if "manufacturer" in cmd:
        changed["ManufacturerData"] = dbus.Dictionary(
            {dbus.UInt16(int(k)): dbus.Array(bytes.fromhex(v), signature="y") for k, v in cmd["manufacturer"].items()},
            signature="qv",
        )
    if "service" in cmd:
        changed["ServiceData"] = dbus.Dictionary(
            {k: dbus.Array(bytes.fromhex(v), signature="y") for k, v in cmd["service"].items()},
            signature="sv",
        )
    if "uuids" in cmd:
        changed["UUIDs"] = dbus.Array(cmd["uuids"], signature="s")
    obj(device_path(cmd["adapter"], cmd["address"]), MOCK).EmitSignal(
        dbus.PROPERTIES_IFACE,
        "PropertiesChanged",
        "sa{sv}as",
        [DEVICE, dbus.Dictionary(changed, signature="sv"), dbus.Array([], signature="s")],
    )


OPS = {
    "has_bluez": has_bluez,
    "add_adapter": add_adapter,
    "remove_adapter": remove_adapter,
    "add_device": add_device,
    "set_powered": set_powered,
    "calls": calls,
    "discovery_filter": discovery_filter,
    "advertise": advertise,
}

for line in sys.stdin:
    try:
        command = json.loads(line)
        result = OPS[command["op"]](command)
        print("ok " + json.dumps(result), flush=True)
    except Exception as e:  # the test reads the message; the controller keeps serving
        print("error " + str(e).replace("\n", " "), flush=True)
