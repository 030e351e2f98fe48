"""A Windows registry in dicts, for the installer's and doctor's Windows logic on any OS."""

from __future__ import annotations

from dhims2.setup.installer import HKCU


class FakeRegistry:
    """HKCU and HKLM keys with their named values ("" is the default); writes are recorded."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], dict[str, object]] = {}
        self.calls: list[tuple[str, str, str]] = []

    def values(self, key: str, hive: str = HKCU) -> dict[str, object]:
        return dict(self.keys.get((hive, key), {}))

    def write(self, key: str, value: str, hive: str = HKCU) -> None:
        self.calls.append(("write", hive, key))
        self.keys.setdefault((hive, key), {})[""] = value

    def delete(self, key: str, hive: str = HKCU) -> None:
        self.calls.append(("delete", hive, key))
        self.keys.pop((hive, key), None)

    def set(self, hive: str, key: str, **values: object) -> None:
        """Values an administrator or group policy put there (not recorded as our writes)."""
        self.keys.setdefault((hive, key), {}).update(values)

    def defaults(self, hive: str = HKCU) -> dict[str, object]:
        """Each key's default value: for native messaging, key -> manifest path."""
        return {key: v[""] for (h, key), v in self.keys.items() if h == hive and "" in v}
